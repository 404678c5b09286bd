"""Configuration: `.env.example` documents exactly what the product reads; unsafe defaults refused."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from domain.policy_file import PolicyError
from domain.reviewer_tokens import new_reviewer_entry
from tests.conftest import repo_root
from workers.settings import DEV_INBOUND_SECRET, Settings


def documented() -> set[str]:
    lines = (repo_root() / ".env.example").read_text().splitlines()
    return {line.split("=", 1)[0] for line in lines if line and not line.startswith("#")}


def test_env_example_lists_every_setting_and_nothing_else() -> None:
    assert documented() == {f"REFUNDS_{name.upper()}" for name in Settings.model_fields}


SIGNING = "a-review-signing-secret-of-32-chars-or-more"


def test_outside_dev_the_placeholder_secret_is_refused() -> None:
    """At the start, with every other problem (workers/safety.py), not one at a time at loading."""
    from workers.safety import start_problems

    placeholder = Settings(
        environment="production", inbound_webhook_secret=DEV_INBOUND_SECRET, review_signing_key=SIGNING
    )
    assert any("REFUNDS_INBOUND_WEBHOOK_SECRET" in problem for problem in start_problems(placeholder))
    production = Settings(
        environment="production", inbound_webhook_secret="s3cret", review_signing_key=SIGNING
    )
    assert production.inbound_secrets == ["s3cret"]


def test_outside_dev_decisions_are_signed_with_a_key_of_their_own() -> None:
    """Never derived from a secret a merchant holds: whoever signs requests must not sign approvals."""
    for signing in ["short", "shared-request-secret-that-is-long-enough"]:
        with pytest.raises(ValidationError, match="REFUNDS_REVIEW_SIGNING_KEY"):
            Settings(
                environment="production",
                inbound_webhook_secret="shared-request-secret-that-is-long-enough",
                review_signing_key=signing,
            )
    unset = Settings(environment="production", inbound_webhook_secret="s3cret")  # a worker needs none
    with pytest.raises(PolicyError, match="REFUNDS_REVIEW_SIGNING_KEY"):
        unset.decision_key()  # the service cannot start without one
    rotating = Settings(
        environment="production",
        inbound_webhook_secret="s3cret",
        review_signing_key=f"{SIGNING}-new,{SIGNING}",
    )
    old = Settings(environment="production", inbound_webhook_secret="s3cret", review_signing_key=SIGNING)
    assert len(rotating.review_public_keys()) == 2
    assert old.review_public_keys()[0] == rotating.review_public_keys()[1]  # refunds waiting still verify
    assert rotating.decision_key() != old.decision_key()


def test_rotation_secrets_and_reviewer_tokens_parse() -> None:
    settings = Settings(inbound_webhook_secret="old, new ,", reviewer_tokens="alice:t1, bob:t2, broken")
    assert settings.inbound_secrets == ["old", "new"]
    assert [settings.reviewer_for(t) for t in ("t1", "t2", "t3", "", "broken")] == [
        "alice",
        "bob",
        None,
        None,
        None,
    ]


def test_reviewer_tokens_are_hashed_at_rest_and_plain_ones_refused_in_production() -> None:
    token, entry = new_reviewer_entry("carol")
    assert token not in entry and entry.startswith("carol:sha256:")
    hashed = Settings(
        environment="production",
        inbound_webhook_secret="s",
        reviewer_tokens=entry,
        review_signing_key=SIGNING,
    )
    assert (hashed.reviewer_for(token), hashed.reviewer_for(token + "x")) == ("carol", None)
    with pytest.raises(ValidationError, match="plain tokens for alice"):
        Settings(
            environment="production",
            inbound_webhook_secret="s",
            reviewer_tokens=f"alice:t1,{entry}",
            review_signing_key=SIGNING,
        )


def test_database_defaults_to_sqlite_in_the_data_dir(tmp_path: object) -> None:
    settings = Settings(data_dir=tmp_path, database_url="")  # type: ignore[arg-type]
    assert settings.database_url == f"sqlite:///{tmp_path}/refunds.db"
    assert Settings(stripe_api_base="").stripe_base == "https://api.stripe.com"
