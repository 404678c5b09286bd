"""What refunding on early fraud warnings saved a merchant, per currency, purely.

A payment refunded on a warning costs its amount; left alone, it would have come back as a chargeback
costing the same amount plus the PSP's chargeback fee (and a mark on the merchant's dispute rate, not
counted here). So what a refund made on a warning saved is the fee it avoided: only refunds that
succeeded count, and one the PSP failed afterwards (its row says `failed`) saved nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from domain.money import Money
from domain.status import RefundStatus


@dataclass(frozen=True)
class WarningRefund:
    """Settled refunds made on early fraud warnings, as the lasting record keeps them: one, or
    `refunds` of one merchant, status and currency with `amount` their total."""

    merchant_id: str  # resolved: the default merchant's id, never None
    status: RefundStatus
    amount: Money | None  # None: settled before any amount was known (refused at validation)
    refunds: int = 1


@dataclass(frozen=True)
class Savings:
    """One merchant's refunds made on warnings in one currency; amounts in its minor units."""

    merchant_id: str
    currency: str
    refunds: int  # succeeded
    refunded: int
    fee: int | None  # per chargeback, from the merchant's policy; None: not set for this currency

    @property
    def chargebacks_would_have_cost(self) -> int | None:
        """The same payments as chargebacks: each amount plus the fee."""
        return None if self.fee is None else self.refunded + self.refunds * self.fee

    @property
    def saved(self) -> int | None:
        """The chargeback fees avoided: the amounts were going back to the customer either way."""
        return None if self.fee is None else self.refunds * self.fee


def savings(refunds: Iterable[WarningRefund], fees: Mapping[str, Mapping[str, int]]) -> list[Savings]:
    """Per merchant and currency (sorted), with `fees[merchant][currency]` the merchant's chargeback
    fee. A currency whose refunds all failed is listed with nothing saved, so a figure that was
    reported once drops to zero instead of disappearing."""
    totals: dict[tuple[str, str], tuple[int, int]] = {}
    for refund in refunds:
        if refund.amount is None:
            continue
        key = (refund.merchant_id, refund.amount.currency)
        count, refunded = totals.get(key, (0, 0))
        if refund.status is RefundStatus.SUCCEEDED:
            count, refunded = count + refund.refunds, refunded + refund.amount.value
        totals[key] = (count, refunded)
    return [
        Savings(
            merchant_id=merchant,
            currency=currency,
            refunds=count,
            refunded=refunded,
            fee=fees.get(merchant, {}).get(currency),
        )
        for (merchant, currency), (count, refunded) in sorted(totals.items())
    ]
