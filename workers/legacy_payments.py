"""At start: Adyen payments recorded before the payment book kept accounts become the default
merchant's (its Adyen account was the only one then), so no other merchant's account can claim them."""

from __future__ import annotations

from adapters.db.engine import Database
from adapters.db.payment_book import adopt_unowned
from domain.status import Provider
from workers.settings import Settings


def adopt_legacy_payments(settings: Settings, db: Database) -> None:
    if settings.adyen_merchant_account:
        adopt_unowned(db, Provider.ADYEN, settings.adyen_merchant_account)
