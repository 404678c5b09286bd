"""Merchants beside the default one: each with its own inbound secrets, policy and PSP accounts.

    # REFUNDS_MERCHANTS_FILE (a secret: mount it, never bake it into an image)
    [merchants.acme]
    inbound_webhook_secret = "acme-secret-2026,acme-secret-2025"   # rotation, as for the default
    policy_file = "/etc/refunds/acme-policy.toml"                  # optional
    reviewer_tokens = "carol:sha256:<hex>"   # optional: acme's own reviewers (`refunds reviewer-token`)

    [merchants.acme.stripe]              # the merchant's own Stripe account
    api_key = "sk_live_..."
    webhook_secret = "whsec_..."         # of the endpoint /webhooks/stripe/acme
    rate_limit = 25                      # optional: calls per second to this account
    api_base = "https://api.stripe.com"  # optional: the installation's otherwise

    [merchants.acme.adyen]               # api_key, merchant_account, hmac_key
    [merchants.acme.paypal]              # client_id, client_secret, webhook_id
    # each PSP's keys: its account_keys in workers/psp_wiring/<psp>.py

    [[merchants.acme.events]]            # optional, repeatable: an endpoint that hears acme's events
    url = "https://erp.acme.example/refund-events"
    types = "refund.succeeded,refund.failed"   # or "*"
    secret = "whsec_..."                 # its signing secret (`refunds events secret` makes one)

A request names its merchant in the `Refund-Merchant` header (none: the default merchant) and must be
signed with that merchant's secret, so one merchant's secret can never start another's refund. Its
reviewers (known to the service as `carol@acme`) read, approve and reject acme's refunds only; the
installation's own reviewers (REFUNDS_REVIEWER_TOKENS) act for every merchant. Its
PSP calls use the merchant's own accounts only (a PSP it has not configured is refused, never lent by
another merchant); its ledger accounts and audit carry the merchant; it runs under the merchant's policy.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from domain.naming import MERCHANT_ID_PATTERN
from domain.policy_file import PolicyError
from domain.reviewer_tokens import HASHED, parse_entries, reviewer_for
from workers.psp_wiring import WIRINGS

MERCHANT_ID = re.compile(MERCHANT_ID_PATTERN)  # whole ids only (fullmatch): no trailing newline

# Each PSP section's keys and the installation setting each one stands for; api_base is optional.
PSP_ACCOUNT_KEYS: dict[str, dict[str, str]] = {
    wiring.provider.value: dict(wiring.account_keys) for wiring in WIRINGS
}
_OPTIONAL = {"api_base", "rate_limit"}
_MERCHANT_KEYS = {"inbound_webhook_secret", "policy_file", "reviewer_tokens", "events", *PSP_ACCOUNT_KEYS}
_EVENT_KEYS = {"url", "types", "secret"}
SECRET_BYTES = 24  # the least a declared endpoint's signing secret holds
SECRET_CHARACTERS = 100  # the most it may be written with (as kept: adapters/db/models.py)


@dataclass(frozen=True)
class DeclaredEndpoint:
    """An event endpoint the merchants file declares (kept in the database at each start)."""

    url: str
    types: str
    secret: str


@dataclass(frozen=True)
class MerchantProfile:
    merchant_id: str
    secrets: list[str]
    policy_file: Path | None = None
    # setting name -> value for the merchant's PSP accounts; None: the installation's own settings
    psp_settings: dict[str, str] | None = field(default=None)
    reviewers: list[tuple[str, str]] = field(default_factory=list)  # (name, sha256:<hex>)
    events: list[DeclaredEndpoint] = field(default_factory=list)

    def reviewer_for(self, token: str) -> str | None:
        """`name@merchant` for one of this merchant's reviewer tokens."""
        name = reviewer_for(token, self.reviewers) if token and self.reviewers else None
        return f"{name}@{self.merchant_id}" if name else None


def load_merchants(path: Path) -> dict[str, MerchantProfile]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise PolicyError(f"{path}: cannot be read as TOML: {err}") from err
    profiles = {}
    for merchant_id, entry in (data.get("merchants") or {}).items():
        where = f"{path}: merchants.{merchant_id}"
        if not MERCHANT_ID.fullmatch(merchant_id) or not isinstance(entry, dict):
            raise PolicyError(f"{where}: a lowercase id and a table are required")
        unknown = set(entry) - _MERCHANT_KEYS
        if unknown:
            raise PolicyError(f"{where}: unknown keys {sorted(unknown)}")
        secrets = [s.strip() for s in str(entry.get("inbound_webhook_secret") or "").split(",") if s.strip()]
        if not secrets:
            raise PolicyError(f"{where}.inbound_webhook_secret is required")
        policy = entry.get("policy_file")
        reviewers = parse_entries(str(entry.get("reviewer_tokens") or ""))
        plain = [name for name, secret in reviewers if not secret.startswith(HASHED)]
        if plain:
            raise PolicyError(f"{where}.reviewer_tokens: store name:sha256:<hex> entries, not {plain}")
        profiles[merchant_id] = MerchantProfile(
            merchant_id,
            secrets,
            Path(policy) if policy else None,
            _psp_settings(where, entry),
            reviewers,
            _declared_endpoints(where, entry.get("events")),
        )
    return profiles


def _declared_endpoints(where: str, given: object) -> list[DeclaredEndpoint]:
    """`[[merchants.M.events]]` tables: a URL, the types it hears, its secret (whsec_, base64)."""
    from domain.outbound_events import parse_types

    if given is None:
        return []
    if not isinstance(given, list) or not all(isinstance(item, dict) for item in given):
        raise PolicyError(f"{where}.events: a list of tables ([[merchants.<id>.events]]) is required")
    declared = []
    for index, item in enumerate(given):
        at = f"{where}.events[{index}]"
        unknown = set(item) - _EVENT_KEYS
        if unknown:
            raise PolicyError(f"{at}: unknown keys {sorted(unknown)}")
        url, types, secret = (str(item.get(key) or "").strip() for key in ("url", "types", "secret"))
        if not url or not secret:
            raise PolicyError(f"{at}: url and secret are required")
        try:
            parse_types(types or "*")
        except ValueError as err:
            raise PolicyError(f"{at}.types: {err}") from err
        if not _strong_secret(secret) or len(secret) > SECRET_CHARACTERS:
            raise PolicyError(
                f"{at}.secret: a whsec_ secret of {SECRET_BYTES} random bytes or more, at most "
                f"{SECRET_CHARACTERS} characters (`refunds events secret` makes one)"
            )
        declared.append(DeclaredEndpoint(url, types or "*", secret))
    if len({endpoint.url for endpoint in declared}) != len(declared):
        raise PolicyError(f"{where}.events: each URL once")
    return declared


def _strong_secret(secret: str) -> bool:
    import base64
    import binascii

    if not secret.startswith("whsec_"):
        return False
    try:
        return len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) >= SECRET_BYTES
    except (binascii.Error, ValueError):
        return False


def _psp_settings(where: str, entry: dict[str, Any]) -> dict[str, str]:
    """The merchant's PSP accounts as settings: every credential blank but the merchant's own."""
    settings = {
        name: "" for keys in PSP_ACCOUNT_KEYS.values() for key, name in keys.items() if key != "api_base"
    }
    rates = []
    for provider, keys in PSP_ACCOUNT_KEYS.items():
        account = entry.get(provider)
        if account is None:
            continue
        if not isinstance(account, dict):
            raise PolicyError(f"{where}.{provider}: a table is required")
        unknown = set(account) - set(keys) - _OPTIONAL
        if unknown:
            raise PolicyError(f"{where}.{provider}: unknown keys {sorted(unknown)}")
        for key, name in keys.items():
            value = str(account.get(key) or "").strip()
            if not value and key not in _OPTIONAL:
                raise PolicyError(f"{where}.{provider}.{key} is required")
            if value:
                settings[name] = value
        if "rate_limit" in account:
            rate = account["rate_limit"]
            if isinstance(rate, bool) or not isinstance(rate, int | float) or rate <= 0:
                raise PolicyError(f"{where}.{provider}.rate_limit: calls per second, above 0")
            rates.append(f"{provider}:{rate}")
    settings["psp_rate_limits"] = ",".join(rates)
    return settings
