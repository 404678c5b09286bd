"""Adyen, as workers see it: its settings, merchants-file keys, sandbox credentials and start check."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pydantic import BaseModel, field_validator

from domain.status import Provider
from workers.psp_wiring.base import PspWiring

if TYPE_CHECKING:
    from adapters.db.engine import Database
    from adapters.psp.base import PspAdapter
    from workers.settings import Settings

SANDBOX_ADYEN_API_KEY = "adyen_sandbox_key"
SANDBOX_ADYEN_MERCHANT_ACCOUNT = "SandboxMerchant"
SANDBOX_ADYEN_HMAC_KEY = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"
DEFAULT_API_BASE = "https://checkout-test.adyen.com"
_HEX = re.compile(r"[0-9a-fA-F]+")


class AdyenSettings(BaseModel):
    adyen_api_key: str = ""
    adyen_api_base: str = ""
    adyen_merchant_account: str = ""
    adyen_hmac_key: str = ""

    @field_validator("adyen_api_base")
    @classmethod
    def _adyen_base_without_slash(cls, base: str) -> str:
        return base.rstrip("/")

    @property
    def adyen_base(self) -> str:
        return self.adyen_api_base or DEFAULT_API_BASE


def problems(settings: Settings) -> list[str]:
    """Adyen's notifications are verified with the account's HMAC key, hex of 32 bytes or more: a
    short or mistyped one would verify nothing (or let a guess through)."""
    key = settings.adyen_hmac_key
    if settings.adyen_api_key and (len(key) < 64 or len(key) % 2 or not _HEX.fullmatch(key)):
        return ["REFUNDS_ADYEN_HMAC_KEY must be the hex HMAC key from Adyen (32 bytes or more)"]
    return []


def adapter(settings: Settings, db: Database) -> PspAdapter | None:
    if not settings.adyen_api_key:
        return None
    from adapters.db.payment_book import DatabasePaymentBook
    from adapters.db.reference_aliases import DatabaseReferenceBook
    from adapters.psp.adyen import AdyenAdapter

    return AdyenAdapter(
        api_key=settings.adyen_api_key,
        api_base=settings.adyen_base,
        merchant_account=settings.adyen_merchant_account,
        hmac_key_hex=settings.adyen_hmac_key,
        payments=DatabasePaymentBook(db),
        references=DatabaseReferenceBook(db),
        timeout_seconds=settings.psp_timeout_seconds,
    )


ADYEN = PspWiring(
    provider=Provider.ADYEN,
    settings=AdyenSettings,
    api_base_field="adyen_api_base",
    default_api_base=DEFAULT_API_BASE,
    account_keys={
        "api_key": "adyen_api_key",
        "merchant_account": "adyen_merchant_account",
        "hmac_key": "adyen_hmac_key",
        "api_base": "adyen_api_base",
    },
    secrets=("adyen_api_key", "adyen_hmac_key"),
    identities=("adyen_merchant_account",),
    sandbox={
        "adyen_api_key": SANDBOX_ADYEN_API_KEY,
        "adyen_merchant_account": SANDBOX_ADYEN_MERCHANT_ACCOUNT,
        "adyen_hmac_key": SANDBOX_ADYEN_HMAC_KEY,
    },
    sandbox_path="/checkout",
    problems=problems,
    adapter=adapter,
)
