"""Event endpoints the merchants file declares: kept in the database at each worker start as the
file says (added, types changed, a changed secret rotated with a grace, a removed one disabled with
its events kept), refused when malformed, and never pointed inward outside dev."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from adapters.db import event_endpoints
from adapters.db.engine import Database
from adapters.db.event_endpoints import REMOVED_FROM_FILE, declared_id, new_secret
from domain.policy_file import PolicyError
from tests.helpers import unique
from workers.declared_endpoints import keep_declared_endpoints
from workers.merchants import load_merchants
from workers.safety import start_problems
from workers.settings import Settings


def _file(tmp_path: Path, merchant: str, *endpoints: str) -> Path:
    path = tmp_path / f"{merchant}.toml"
    path.write_text(
        f'[merchants.{merchant}]\ninbound_webhook_secret = "{merchant}-secret-0123456789"\n'
        + "".join(f"[[merchants.{merchant}.events]]\n{endpoint}\n" for endpoint in endpoints)
    )
    return path


def _endpoint(url: str, secret: str, types: str = "*") -> str:
    return f'url = "{url}"\ntypes = "{types}"\nsecret = "{secret}"'


def test_the_file_is_kept_as_it_says_at_each_start(db: Database, tmp_path: Path) -> None:
    merchant, first, second = unique("shop"), new_secret(), new_secret()
    url = "https://erp.example.com/refund-events"

    def start(*endpoints: str) -> list[str]:
        settings = Settings(environment="dev", merchants_file=_file(tmp_path, merchant, *endpoints))
        return keep_declared_endpoints(settings, db)

    assert start(_endpoint(url, first, "refund.succeeded")) == [
        f"{declared_id(merchant, url)} added for {merchant}: {url}"
    ]
    assert start(_endpoint(url, first, "refund.succeeded")) == []  # the same file: nothing changes
    changed = start(_endpoint(url, second, "refund.succeeded,refund.failed"))
    assert len(changed) == 2
    with db.transaction() as session:
        now = event_endpoints.listing(session, merchant, every_merchant=False)[0]
        keys = event_endpoints.signing_secrets(session, now.endpoint_id, now.created_at + timedelta(hours=1))
    assert [t.value for t in now.event_types] == ["refund.succeeded", "refund.failed"]
    assert keys is not None and (keys.current, keys.previous) == (second, first)  # rotated, in grace
    assert start() == [f"{now.endpoint_id} no longer declared: disabled, its events kept"]
    with db.transaction() as session:
        gone = event_endpoints.get(session, now.endpoint_id)
    assert gone is not None and (gone.enabled, gone.disabled_reason) == (False, REMOVED_FROM_FILE)


@pytest.mark.parametrize(
    ("endpoint", "says"),
    [
        (_endpoint("https://x.example.com/", "whsec_c2hvcnQ="), "a whsec_ secret of 24 random bytes"),
        (_endpoint("https://x.example.com/", "not-a-secret"), "a whsec_ secret"),
        (_endpoint("https://x.example.com/", new_secret(), "refund.paid"), "unknown event type refund.paid"),
        ('url = "https://x.example.com/"', "url and secret are required"),
        (_endpoint("https://x.example.com/", new_secret()) + '\nheaders = "x"', "unknown keys ['headers']"),
        (_endpoint("https://x.example.com/", "whsec_" + "A" * 128), "at most 100 characters"),
    ],
)
def test_a_malformed_declaration_is_refused_by_name(tmp_path: Path, endpoint: str, says: str) -> None:
    with pytest.raises(PolicyError) as refused:
        load_merchants(_file(tmp_path, "acme", endpoint))
    assert says in str(refused.value) and "merchants.acme.events[0]" in str(refused.value)


def test_outside_dev_a_declared_endpoint_pointing_inward_stops_the_start(tmp_path: Path) -> None:
    inward = _file(tmp_path, "acme", _endpoint("https://169.254.169.254/latest", new_secret()))
    problems = start_problems(Settings(environment="dev", merchants_file=inward))
    assert not [p for p in problems if "events endpoint" in p]  # dev: a local receiver is fine
    production = Settings(
        environment="production",
        merchants_file=inward,
        inbound_webhook_secret="a-production-inbound-secret",
        review_signing_key="a-production-review-signing-key-0123456789",
        payload_encryption_waived=True,
    )
    assert any(
        "merchant acme: events endpoint" in p and "not a public address" in p
        for p in start_problems(production)
    )
