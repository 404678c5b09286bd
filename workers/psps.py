"""Which PSP adapters this process talks to, from settings."""

from __future__ import annotations

from adapters.psp.base import PspAdapter, PspRegistry
from adapters.psp.stripe import StripeAdapter
from workers.settings import Settings


def build_registry(settings: Settings) -> PspRegistry:
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
    return PspRegistry(adapters)
