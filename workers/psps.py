"""Which PSP adapters this process talks to, from settings."""

from __future__ import annotations

from adapters.db.engine import Database
from adapters.psp.base import PspDirectory, PspRegistry
from workers.psp_wiring import WIRINGS
from workers.settings import Settings


def build_registry(settings: Settings, db: Database) -> PspRegistry:
    """Every PSP whose credentials are set; the others answer `provider_not_configured`."""
    adapters = [wiring.adapter(settings, db) for wiring in WIRINGS]
    return PspRegistry([adapter for adapter in adapters if adapter is not None])


def build_directory(settings: Settings, db: Database) -> PspDirectory:
    """Every merchant's own PSP accounts, the default merchant's (these settings) included."""
    registries = {
        merchant_id: build_registry(settings.for_merchant(profile), db)
        for merchant_id, profile in settings.merchant_profiles().items()
    }
    return PspDirectory(registries, settings.merchant_id)
