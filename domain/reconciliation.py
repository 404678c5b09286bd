"""Reconciliation: the PSP's refunds against our books, as a list of differences. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from domain.money import Money
from domain.status import PspRefundStatus


class PspRefundRecord(BaseModel):
    """A refund as the PSP lists it."""

    model_config = ConfigDict(frozen=True)

    psp_refund_id: str
    payment_reference: str
    amount: Money
    status: PspRefundStatus


class BookedRefund(BaseModel):
    """A refund as our books have it: the refunds row and what the ledger paid out for it."""

    model_config = ConfigDict(frozen=True)

    request_id: str
    psp_refund_id: str
    payment_reference: str
    amount: Money
    succeeded: bool
    paid_out: int  # posted to the PSP's receivable account, net of reversals


class DiscrepancyKind(StrEnum):
    MISSING_IN_LEDGER = "missing_in_ledger"  # the PSP refunded, our books know nothing of it
    MISSING_AT_PSP = "missing_at_psp"  # our books say refunded, the PSP has no such refund
    AMOUNT_MISMATCH = "amount_mismatch"
    STATUS_MISMATCH = "status_mismatch"


class Discrepancy(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: DiscrepancyKind
    psp_refund_id: str
    payment_reference: str
    request_id: str | None = None
    ours: str = ""  # for people: an amount or a status, as each side has it
    theirs: str = ""
    # for scripts: the same, typed (money as {value, currency}; absent where a side has none)
    ours_amount: Money | None = None
    ledger_amount: Money | None = None  # what our ledger paid out for it
    theirs_amount: Money | None = None
    ours_status: str | None = None
    theirs_status: str | None = None


def reconcile(psp: Iterable[PspRefundRecord], books: Iterable[BookedRefund]) -> list[Discrepancy]:
    """Every difference, ordered by PSP refund id. A refund still pending at the PSP is not yet a
    difference; one the PSP failed is money that did not move, so only our success contradicts it."""
    theirs = {record.psp_refund_id: record for record in psp}
    ours = {booked.psp_refund_id: booked for booked in books}
    found: list[Discrepancy] = []
    for refund_id in sorted(theirs.keys() | ours.keys()):
        record, booked = theirs.get(refund_id), ours.get(refund_id)
        if booked is None:
            assert record is not None
            if record.status is PspRefundStatus.SUCCEEDED:
                found.append(
                    Discrepancy(
                        kind=DiscrepancyKind.MISSING_IN_LEDGER,
                        psp_refund_id=refund_id,
                        payment_reference=record.payment_reference,
                        theirs=str(record.amount),
                        theirs_amount=record.amount,
                    )
                )
            continue
        if record is None:
            if booked.succeeded:
                missing = _ours(DiscrepancyKind.MISSING_AT_PSP, booked, str(booked.amount), "absent")
                found.append(missing.model_copy(update={"ours_amount": booked.amount}))
            continue
        if record.status is PspRefundStatus.PENDING:
            continue
        psp_succeeded = record.status is PspRefundStatus.SUCCEEDED
        if psp_succeeded != booked.succeeded:
            ours_says = "succeeded" if booked.succeeded else "not succeeded"
            differs = _ours(DiscrepancyKind.STATUS_MISMATCH, booked, ours_says, record.status.value)
            statuses = {"ours_status": ours_says, "theirs_status": record.status.value}
            found.append(differs.model_copy(update=statuses))
        elif psp_succeeded and (record.amount != booked.amount or booked.paid_out != record.amount.value):
            paid_out = Money(value=booked.paid_out, currency=booked.amount.currency)
            ours_says = f"{booked.amount} (ledger {paid_out})"
            differs = _ours(DiscrepancyKind.AMOUNT_MISMATCH, booked, ours_says, str(record.amount))
            amounts = {
                "ours_amount": booked.amount,
                "ledger_amount": paid_out,
                "theirs_amount": record.amount,
            }
            found.append(differs.model_copy(update=amounts))
    return found


def _ours(kind: DiscrepancyKind, booked: BookedRefund, ours: str, theirs: str) -> Discrepancy:
    return Discrepancy(
        kind=kind,
        psp_refund_id=booked.psp_refund_id,
        payment_reference=booked.payment_reference,
        request_id=booked.request_id,
        ours=ours,
        theirs=theirs,
    )
