"""Merchants beside the default one: each with its own inbound secrets and refund policy.

    # REFUNDS_MERCHANTS_FILE
    [merchants.acme]
    inbound_webhook_secret = "acme-secret-2026,acme-secret-2025"   # rotation, as for the default
    policy_file = "/etc/refunds/acme-policy.toml"                  # optional

A request names its merchant in the `Refund-Merchant` header (none: the default merchant) and must be
signed with that merchant's secret, so one merchant's secret can never start another's refund. Its
ledger accounts and audit carry the merchant; its workflow runs under the merchant's policy.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from domain.policy_file import PolicyError

MERCHANT_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


@dataclass(frozen=True)
class MerchantProfile:
    merchant_id: str
    secrets: list[str]
    policy_file: Path | None = None


def load_merchants(path: Path) -> dict[str, MerchantProfile]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise PolicyError(f"{path}: cannot be read as TOML: {err}") from err
    profiles = {}
    for merchant_id, entry in (data.get("merchants") or {}).items():
        if not MERCHANT_ID.match(merchant_id) or not isinstance(entry, dict):
            raise PolicyError(f"{path}: merchants.{merchant_id}: a lowercase id and a table are required")
        unknown = set(entry) - {"inbound_webhook_secret", "policy_file"}
        if unknown:
            raise PolicyError(f"{path}: merchants.{merchant_id}: unknown keys {sorted(unknown)}")
        secrets = [s.strip() for s in str(entry.get("inbound_webhook_secret") or "").split(",") if s.strip()]
        if not secrets:
            raise PolicyError(f"{path}: merchants.{merchant_id}.inbound_webhook_secret is required")
        policy = entry.get("policy_file")
        profiles[merchant_id] = MerchantProfile(merchant_id, secrets, Path(policy) if policy else None)
    return profiles
