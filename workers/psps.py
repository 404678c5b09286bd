"""Which PSP adapters this process talks to, from settings."""

from __future__ import annotations

from adapters.db.engine import Database
from adapters.db.payment_book import DatabasePaymentBook
from adapters.db.reference_aliases import DatabaseReferenceBook
from adapters.psp.adyen import AdyenAdapter
from adapters.psp.base import PspAdapter, PspDirectory, PspRegistry
from adapters.psp.paypal import PayPalAdapter
from adapters.psp.stripe import StripeAdapter
from workers.settings import Settings


def build_registry(settings: Settings, db: Database) -> PspRegistry:
    """Every PSP whose credentials are set; the others answer `provider_not_configured`."""
    adapters: list[PspAdapter] = []
    if settings.stripe_api_key:
        adapters.append(
            StripeAdapter(
                api_key=settings.stripe_api_key,
                api_base=settings.stripe_base,
                webhook_secret=settings.stripe_webhook_secret,
                timeout_seconds=settings.psp_timeout_seconds,
            )
        )
    if settings.adyen_api_key:
        adapters.append(
            AdyenAdapter(
                api_key=settings.adyen_api_key,
                api_base=settings.adyen_base,
                merchant_account=settings.adyen_merchant_account,
                hmac_key_hex=settings.adyen_hmac_key,
                payments=DatabasePaymentBook(db),
                references=DatabaseReferenceBook(db),
                timeout_seconds=settings.psp_timeout_seconds,
            )
        )
    if settings.paypal_client_id:
        adapters.append(
            PayPalAdapter(
                client_id=settings.paypal_client_id,
                client_secret=settings.paypal_client_secret,
                api_base=settings.paypal_base,
                webhook_id=settings.paypal_webhook_id,
                cert_url_prefixes=settings.cert_url_prefixes,
                timeout_seconds=settings.psp_timeout_seconds,
            )
        )
    return PspRegistry(adapters)


def build_directory(settings: Settings, db: Database) -> PspDirectory:
    """Every merchant's own PSP accounts, the default merchant's (these settings) included."""
    registries = {
        merchant_id: build_registry(settings.for_merchant(profile), db)
        for merchant_id, profile in settings.merchant_profiles().items()
    }
    return PspDirectory(registries, settings.merchant_id)
