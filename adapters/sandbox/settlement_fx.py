"""Converting a Stripe amount into the merchant's settlement currency, as a balance transaction."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from adapters.sandbox.store import Settlement
from domain.money import currency_exponent


def convert(amount: int, currency: str, into: str, rate: Decimal) -> int:
    """Minor units of `currency` at `rate` (major units of `into` per major unit) in minor units of
    `into`, rounded half to even."""
    shift = currency_exponent(into) - currency_exponent(currency)
    return int((Decimal(amount) * rate).scaleb(shift).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def balance_transaction(
    source_id: str, amount: int, currency: str, settlement: Settlement | None, *, refund: bool
) -> dict[str, Any]:
    """Stripe's balance transaction for a charge (positive) or a refund (negative)."""
    rate = (
        settlement.refund_rate if refund and settlement else settlement.capture_rate if settlement else None
    )
    into = settlement.currency.lower() if settlement else currency.lower()
    settled = convert(amount, currency, into, rate) if rate is not None else amount
    signed = -settled if refund else settled
    return {
        "id": f"txn_{source_id.split('_', 1)[-1]}",
        "object": "balance_transaction",
        "amount": signed,
        "currency": into,
        "fee": 0,
        "net": signed,
        "source": source_id,
        "type": "refund" if refund else "charge",
    }
