"""Stripe, as workers see it: its settings, merchants-file keys, sandbox credentials and start check."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, field_validator

from domain.status import Provider
from workers.psp_wiring.base import PspWiring

if TYPE_CHECKING:
    from adapters.db.engine import Database
    from adapters.psp.base import PspAdapter
    from workers.settings import Settings

SANDBOX_STRIPE_API_KEY = "sk_test_sandbox"
SANDBOX_STRIPE_WEBHOOK_SECRET = "whsec_sandbox"
DEFAULT_API_BASE = "https://api.stripe.com"


class StripeSettings(BaseModel):
    stripe_api_key: str = ""
    stripe_api_base: str = ""
    stripe_webhook_secret: str = ""

    @field_validator("stripe_api_base")
    @classmethod
    def _stripe_base_without_slash(cls, base: str) -> str:
        return base.rstrip("/")

    @property
    def stripe_base(self) -> str:
        return self.stripe_api_base or DEFAULT_API_BASE


def problems(settings: Settings) -> list[str]:
    """Stripe's webhooks cannot be verified without the endpoint's secret: anyone could post them."""
    if settings.stripe_api_key and not settings.stripe_webhook_secret:
        return ["REFUNDS_STRIPE_WEBHOOK_SECRET must be set when Stripe is configured"]
    return []


def adapter(settings: Settings, db: Database) -> PspAdapter | None:
    if not settings.stripe_api_key:
        return None
    from adapters.psp.stripe import StripeAdapter

    return StripeAdapter(
        api_key=settings.stripe_api_key,
        api_base=settings.stripe_base,
        webhook_secret=settings.stripe_webhook_secret,
        timeout_seconds=settings.psp_timeout_seconds,
    )


STRIPE = PspWiring(
    provider=Provider.STRIPE,
    settings=StripeSettings,
    api_base_field="stripe_api_base",
    default_api_base=DEFAULT_API_BASE,
    account_keys={
        "api_key": "stripe_api_key",
        "webhook_secret": "stripe_webhook_secret",
        "api_base": "stripe_api_base",
    },
    secrets=("stripe_api_key", "stripe_webhook_secret"),
    sandbox={
        "stripe_api_key": SANDBOX_STRIPE_API_KEY,
        "stripe_webhook_secret": SANDBOX_STRIPE_WEBHOOK_SECRET,
    },
    sandbox_path="",
    problems=problems,
    adapter=adapter,
    webhook_headers={"Stripe-Signature": "Stripe's `t=...,v1=...` signature of the body (Stripe)"},
)
