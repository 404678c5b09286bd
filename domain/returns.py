"""Returned goods: which units a refund expects back, and the warehouse's receipts of them.

No ghost stock: a unit is restocked only when a receipt says the warehouse has it and can sell it,
and each receipt is restocked once. The refund does not wait for the goods, nor the goods for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from domain.requests import REFUND_ID_LENGTH, REFUND_ID_PATTERN, RefundRequest

# Reasons whose goods never come back (or could not be sold): the refund expects no return.
DEFAULT_NO_RETURN_REASONS = ("damaged", "defective", "not_received", "vending_failure", "goodwill")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ReturnLine(_Frozen):
    sku: str
    quantity: int = Field(gt=0)


class ReceiptLine(_Frozen):
    sku: str = Field(min_length=1, max_length=128)
    received: int = Field(gt=0, le=1_000_000)
    sellable: int = Field(ge=0)

    @model_validator(mode="after")
    def _sellable_were_received(self) -> ReceiptLine:
        if self.sellable > self.received:
            raise ValueError("sellable units cannot exceed received units")
        return self


class GoodsReceipt(_Frozen):
    """The warehouse's word that units arrived; `receipt_id` makes a repeated report harmless."""

    receipt_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$")
    lines: list[ReceiptLine] = Field(min_length=1)
    received_by: str = Field(default="warehouse", min_length=1, max_length=128)
    # the refund these goods came back for: a signed receipt is bound to it, so the same receipt
    # posted to another refund restocks nothing (required over HTTP; None only in old histories)
    request_id: str | None = Field(default=None, pattern=REFUND_ID_PATTERN, max_length=REFUND_ID_LENGTH)


class ReturnsStatus(StrEnum):
    NONE = "none"  # nothing to come back
    AWAITING_GOODS = "awaiting_goods"
    RECEIVED = "received"
    NOT_RECEIVED = "not_received"  # the deadline passed first


class ReturnsState(_Frozen):
    status: ReturnsStatus = ReturnsStatus.NONE
    expected: list[ReturnLine] = []
    received: dict[str, int] = {}
    restocked: dict[str, int] = {}
    receipts: list[str] = []
    restocking: list[str] = []  # receipts accepted whose sellable units are not restocked yet


def expected_returns(request: RefundRequest, no_return_reasons: Iterable[str]) -> list[ReturnLine]:
    """The restockable units the customer sends back, per SKU; none for a no-return reason."""
    if request.reason_code in set(no_return_reasons):
        return []
    totals: dict[str, int] = {}
    for item in request.items or []:
        if item.restock:
            totals[item.sku] = totals.get(item.sku, 0) + item.quantity
    return [ReturnLine(sku=sku, quantity=quantity) for sku, quantity in totals.items()]


def receipt_problem(state: ReturnsState, receipt: GoodsReceipt) -> str | None:
    """Why a receipt cannot be accepted (None: it can, or it is a repeat and changes nothing)."""
    if receipt.receipt_id in state.receipts:
        return None
    if state.status is not ReturnsStatus.AWAITING_GOODS:
        return f"no goods are expected back (returns {state.status.value})"
    expected = {line.sku: line.quantity for line in state.expected}
    arriving: dict[str, int] = {}
    for line in receipt.lines:
        arriving[line.sku] = arriving.get(line.sku, 0) + line.received
    for sku, quantity in arriving.items():
        if sku not in expected:
            return f"{sku} is not part of this return"
        if state.received.get(sku, 0) + quantity > expected[sku]:
            return (
                f"{sku}: {quantity} more than the {expected[sku] - state.received.get(sku, 0)} still expected"
            )
    return None


def with_receipt(state: ReturnsState, receipt: GoodsReceipt) -> ReturnsState:
    """The state once `receipt` is counted (a repeat changes nothing)."""
    if receipt.receipt_id in state.receipts:
        return state
    received = dict(state.received)
    for line in receipt.lines:
        received[line.sku] = received.get(line.sku, 0) + line.received
    complete = all(received.get(line.sku, 0) >= line.quantity for line in state.expected)
    return state.model_copy(
        update={
            "received": received,
            "receipts": [*state.receipts, receipt.receipt_id],
            "restocking": [*state.restocking, receipt.receipt_id],
            "status": ReturnsStatus.RECEIVED if complete else state.status,
        }
    )


def with_restock(state: ReturnsState, receipt_id: str | None, restocked: dict[str, int]) -> ReturnsState:
    """The state once `receipt_id`'s units (None: none, the deadline's note) are restocked."""
    totals = dict(state.restocked)
    for sku, units in restocked.items():
        totals[sku] = totals.get(sku, 0) + units
    pending = [receipt for receipt in state.restocking if receipt != receipt_id]
    return state.model_copy(update={"restocked": totals, "restocking": pending})
