"""Which merchant a step acts for. The workflow contracts carry None for the installation's default
merchant, as every refund's recorded history does; a step names the merchant here, once, and from
then on acts for a named merchant."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Merchants:
    default: str  # REFUNDS_MERCHANT_ID

    def named(self, merchant_id: str | None) -> str:
        return self.default if merchant_id is None else merchant_id
