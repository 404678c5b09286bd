"""PayPal, as workers see it: its settings, merchants-file keys, sandbox credentials and start check."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field, field_validator

from domain.status import Provider
from workers.psp_wiring.base import PspWiring

if TYPE_CHECKING:
    from cryptography import x509

    from adapters.db.engine import Database
    from adapters.psp.base import PspAdapter
    from workers.settings import Settings

SANDBOX_PAYPAL_CLIENT_ID = "paypal_sandbox_client"
SANDBOX_PAYPAL_CLIENT_SECRET = "paypal_sandbox_secret"
SANDBOX_PAYPAL_WEBHOOK_ID = "WH-SANDBOX"
DEFAULT_API_BASE = "https://api-m.sandbox.paypal.com"
# The PSP sandbox's CA (sandbox/paypal/certificates.py), which issues its PayPal signing certificate.
# Its key derives from a seed anyone can read, so only dev and tests trust it (`trusted_roots`); a
# production process takes PayPal's signature from certificates under DigiCert's roots alone.
SANDBOX_PAYPAL_CA_PEM = """\
-----BEGIN CERTIFICATE-----
MIIB0DCCAXWgAwIBAgIBATAKBggqhkjOPQQDAjBcMQswCQYDVQQGEwJYWDEpMCcG
A1UECgwgUmVmdW5kcyBQU1Agc2FuZGJveCAobm90IFBheVBhbCkxIjAgBgNVBAMM
GVJlZnVuZHMgU2FuZGJveCBQYXlQYWwgQ0EwIBcNMjAwMTAxMDAwMDAwWhgPMjA1
MDAxMDEwMDAwMDBaMFwxCzAJBgNVBAYTAlhYMSkwJwYDVQQKDCBSZWZ1bmRzIFBT
UCBzYW5kYm94IChub3QgUGF5UGFsKTEiMCAGA1UEAwwZUmVmdW5kcyBTYW5kYm94
IFBheVBhbCBDQTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABCg1IyGhNzACuSnu
gD/++BbtT2BKw0gG05zzdp7lY6pPeSjsJsx7Sif4kFKSPrnD/Oqp5oqPDC+NYulp
mm5Uz6CjJjAkMBIGA1UdEwEB/wQIMAYBAf8CAQAwDgYDVR0PAQH/BAQDAgEGMAoG
CCqGSM49BAMCA0kAMEYCIQDDndDk8gfGoCzyQkjP4f7dTmGrRmPQirNmXRZ5dCzi
6wIhAOE3bJAKVPhjKTVrAhZkuZCj6JS1D2YFY85CBpwBglU2
-----END CERTIFICATE-----
"""
SANDBOX_TRUSTED_IN = frozenset({"dev", "test"})  # REFUNDS_ENVIRONMENT values that trust the sandbox CA


class PayPalSettings(BaseModel):
    paypal_client_id: str = ""
    paypal_client_secret: str = ""
    paypal_api_base: str = ""
    paypal_webhook_id: str = ""
    paypal_cert_url_prefixes: str = Field(
        default="https://api.paypal.com/,https://api.sandbox.paypal.com/,"
        "https://api-m.paypal.com/,https://api-m.sandbox.paypal.com/",
        description="comma-separated; a webhook's certificate URL must start with one of them",
    )

    @field_validator("paypal_api_base")
    @classmethod
    def _paypal_base_without_slash(cls, base: str) -> str:
        return base.rstrip("/")

    @property
    def paypal_base(self) -> str:
        return self.paypal_api_base or DEFAULT_API_BASE

    @property
    def cert_url_prefixes(self) -> list[str]:
        prefixes = (prefix.strip() for prefix in self.paypal_cert_url_prefixes.split(","))
        return [prefix for prefix in prefixes if prefix]


def problems(settings: Settings) -> list[str]:
    """PayPal verifies a webhook for the webhook id it was sent to: without it, none can be."""
    if settings.paypal_client_id and not settings.paypal_webhook_id:
        return ["REFUNDS_PAYPAL_WEBHOOK_ID must be set when PayPal is configured"]
    return []


def trusted_roots(environment: str) -> Sequence[x509.Certificate]:
    """The roots a PayPal signing certificate must chain to: DigiCert's, and in dev and tests the PSP
    sandbox's CA too (it signs the sandbox's webhooks; anyone could issue under it)."""
    from cryptography import x509

    from adapters.psp.paypal_certificates import PAYPAL_ROOTS

    if environment not in SANDBOX_TRUSTED_IN:
        return PAYPAL_ROOTS
    return (*PAYPAL_ROOTS, x509.load_pem_x509_certificate(SANDBOX_PAYPAL_CA_PEM.encode()))


def adapter(settings: Settings, db: Database) -> PspAdapter | None:
    if not settings.paypal_client_id:
        return None
    from adapters.db.psp_transmissions import DatabaseTransmissionBook
    from adapters.db.reference_aliases import DatabaseReferenceBook
    from adapters.psp.paypal import PayPalAdapter

    return PayPalAdapter(
        client_id=settings.paypal_client_id,
        client_secret=settings.paypal_client_secret,
        api_base=settings.paypal_base,
        webhook_id=settings.paypal_webhook_id,
        cert_url_prefixes=settings.cert_url_prefixes,
        timeout_seconds=settings.psp_timeout_seconds,
        references=DatabaseReferenceBook(db),
        transmissions=DatabaseTransmissionBook(db, Provider.PAYPAL),
        trusted_roots=trusted_roots(settings.environment),
    )


def dev_extras(settings: Settings, sandbox_url: str) -> dict[str, str]:
    """The sandbox signs webhooks with a certificate it serves itself, issued by its CA, which dev
    trusts (`trusted_roots`); its subject is PayPal sandbox's (the CN expected of any host but PayPal's
    live ones, adapters/psp/paypal_certificates.py)."""
    prefixes = [*settings.cert_url_prefixes, f"{sandbox_url}/_sandbox/paypal/"]
    return {"REFUNDS_PAYPAL_CERT_URL_PREFIXES": ",".join(prefixes)}


PAYPAL = PspWiring(
    provider=Provider.PAYPAL,
    settings=PayPalSettings,
    api_base_field="paypal_api_base",
    default_api_base=DEFAULT_API_BASE,
    account_keys={
        "client_id": "paypal_client_id",
        "client_secret": "paypal_client_secret",
        "webhook_id": "paypal_webhook_id",
        "api_base": "paypal_api_base",
    },
    secrets=("paypal_client_secret",),
    sandbox={
        "paypal_client_id": SANDBOX_PAYPAL_CLIENT_ID,
        "paypal_client_secret": SANDBOX_PAYPAL_CLIENT_SECRET,
        "paypal_webhook_id": SANDBOX_PAYPAL_WEBHOOK_ID,
    },
    sandbox_path="",
    problems=problems,
    adapter=adapter,
    dev_extras=dev_extras,
    webhook_headers={
        f"Paypal-{name}": "A transmission header PayPal signs with its certificate (PayPal)"
        for name in ("Transmission-Id", "Transmission-Time", "Transmission-Sig", "Cert-Url", "Auth-Algo")
    },
)
