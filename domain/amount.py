"""How much to refund, in minor units: pure, so the workflow computes it without a round trip."""

from __future__ import annotations

from dataclasses import dataclass

from domain.allocation import Allocation, ShippingPolicy, allocate
from domain.contracts import PaymentRecord
from domain.money import Money
from domain.requests import RefundRequest
from domain.status import ErrorCode


@dataclass(frozen=True)
class AmountDecision:
    amount: Money | None
    error: ErrorCode | None = None
    message: str = ""
    allocation: Allocation | None = None


def refund_amount(
    request: RefundRequest,
    payment: PaymentRecord,
    shipping_policy: ShippingPolicy = ShippingPolicy.FULL_RETURN,
) -> AmountDecision:
    """The requested amount, or everything still refundable when the request names none, split over
    the request's lines, tax and shipping."""
    currency = payment.currency
    if request.amount is not None and request.amount.currency != currency:
        return AmountDecision(
            None,
            ErrorCode.CURRENCY_MISMATCH,
            f"request is in {request.amount.currency}, payment in {currency}",
        )
    available = payment.refundable if payment.amount_captured else payment.amount_authorized
    value = available if request.amount is None else request.amount.value
    if value <= 0:
        return AmountDecision(None, ErrorCode.INVALID_AMOUNT, "nothing left to refund")
    if value > available:
        return AmountDecision(
            None,
            ErrorCode.REFUND_EXCEEDS_CAPTURE,
            f"requested {Money(value=value, currency=currency)}, only "
            f"{Money(value=available, currency=currency)} is refundable",
        )
    amount = Money(value=value, currency=currency)
    whole = payment.amount_captured or payment.amount_authorized
    allocation = allocate(
        amount, request.items or [], request.shipping_amount or 0, shipping_policy, full_return=value == whole
    )
    return AmountDecision(amount, allocation=allocation)
