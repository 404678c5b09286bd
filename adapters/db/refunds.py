"""The refunds table: each refund's settled outcome."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session
from sqlmodel import col

from adapters.db import ledger
from adapters.db.models import RefundRow, utcnow
from domain.accounts import paid_out
from domain.allocation import Allocation
from domain.contracts import RefundState
from domain.fraud_warnings import WARNING_ID_PREFIX
from domain.money import Money
from domain.naming import MERCHANT_SEPARATOR
from domain.reconciliation import BookedRefund
from domain.status import ErrorCode, Provider, RefundMethod, RefundStatus
from domain.warning_savings import WarningRefund


@dataclass(frozen=True)
class SettledRefund:
    """A refund's settled outcome, as its row keeps it."""

    request_id: str
    provider: Provider
    payment_reference: str
    status: RefundStatus
    amount: Money | None
    order_id: str = ""  # a refund made outside the product belongs to no order of ours
    merchant_id: str | None = None  # None: the installation's default merchant
    method: RefundMethod = RefundMethod.REFUND
    psp_refund_id: str | None = None
    failure_code: ErrorCode | None = None
    allocation: Allocation | None = None
    request_digest: str | None = None
    requested_by: str | None = None  # an API client, a PSP's warning; None: the merchant's platform


def save_outcome(session: Session, outcome: SettledRefund) -> bool:
    """Write the settled refund once. A settled row is the lasting record and is never overwritten
    (only a late PSP failure changes it, through the reversal); False when one exists."""
    if session.get(RefundRow, outcome.request_id) is not None:
        return False
    session.add(
        RefundRow(
            request_id=outcome.request_id,
            provider=outcome.provider.value,
            payment_reference=outcome.payment_reference,
            order_id=outcome.order_id,
            merchant=outcome.merchant_id,
            status=outcome.status.value,
            method=outcome.method.value,
            amount=outcome.amount.value if outcome.amount else None,
            currency=outcome.amount.currency if outcome.amount else None,
            psp_refund_id=outcome.psp_refund_id,
            failure_code=outcome.failure_code.value if outcome.failure_code else None,
            allocation=outcome.allocation.model_dump_json() if outcome.allocation else None,
            request_digest=outcome.request_digest,
            requested_by=outcome.requested_by,
            updated_at=utcnow(),
        )
    )
    return True


def get(session: Session, request_id: str, *, for_update: bool = False) -> RefundRow | None:
    """The settled row; `for_update` locks it until the transaction ends (one reversal at a time)."""
    return session.get(RefundRow, request_id, with_for_update=for_update)


def settled_state(session: Session, request_id: str) -> RefundState | None:
    """The settled refund as the API shows it, from its row: what outlives Temporal's retention."""
    row = session.get(RefundRow, request_id)
    if row is None:
        return None
    return RefundState(
        request_id=row.request_id,
        provider=Provider(row.provider),
        payment_reference=row.payment_reference,
        order_id=row.order_id,
        status=RefundStatus(row.status),
        merchant_id=row.merchant,
        method=RefundMethod(row.method),
        amount=Money(value=row.amount, currency=row.currency)
        if row.amount is not None and row.currency
        else None,
        psp_refund_id=row.psp_refund_id,
        failure_code=ErrorCode(row.failure_code) if row.failure_code else None,
        allocation=Allocation.model_validate_json(row.allocation) if row.allocation else None,
        requested_by=row.requested_by,
    )


def booked(
    session: Session,
    provider: Provider,
    since: datetime,
    payment_references: Sequence[str] = (),
    merchant_id: str | None = None,
    until: datetime | None = None,
) -> list[BookedRefund]:
    """One merchant's refunds at `provider` (None: the default merchant's) settled since `since`
    (voids excluded: no refund exists at the PSP), with what the ledger paid out for each."""
    mine = (
        col(RefundRow.merchant).is_(None) if merchant_id is None else col(RefundRow.merchant) == merchant_id
    )
    query = select(RefundRow).where(
        mine,
        col(RefundRow.provider) == provider.value,
        col(RefundRow.updated_at) >= since,
        col(RefundRow.psp_refund_id).is_not(None),
        col(RefundRow.method) == RefundMethod.REFUND.value,
    )
    if payment_references:
        query = query.where(col(RefundRow.payment_reference).in_(payment_references))
    if until is not None:
        query = query.where(col(RefundRow.updated_at) < until)
    result: list[BookedRefund] = []
    for row in session.execute(query.order_by(col(RefundRow.request_id))).scalars():
        if row.amount is None or not row.currency or row.psp_refund_id is None:
            continue
        result.append(
            BookedRefund(
                request_id=row.request_id,
                psp_refund_id=row.psp_refund_id,
                payment_reference=row.payment_reference,
                amount=Money(value=row.amount, currency=row.currency),
                succeeded=row.status == RefundStatus.SUCCEEDED.value,
                paid_out=paid_out(ledger.balances(session, row.request_id), provider.value, row.currency),
            )
        )
    return result


def warning_refunds(session: Session, default_merchant: str, only: str | None = None) -> list[WarningRefund]:
    """The settled refunds made on early fraud warnings, summed by merchant, status and currency (a
    scrape of /metrics reads a handful of rows, however many refunds there are): those whose request
    id (after the merchant's mark) starts with the prefix no merchant may send
    (`domain/fraud_warnings.py`). Every merchant's, or `only` that one's (by id, the default
    merchant's included); a row without a merchant is the default merchant's (`default_merchant`).
    A row without an amount (refused before one was known) saved nothing and is left out."""
    request_id, merchant, status, currency = (
        col(RefundRow.request_id),
        col(RefundRow.merchant),
        col(RefundRow.status),
        col(RefundRow.currency),
    )
    marked = MERCHANT_SEPARATOR + WARNING_ID_PREFIX
    # compared with `=`, exact in case on both databases (SQLite's LIKE is not); a marked id is its
    # row's merchant, the separator, then the merchant's request id
    on_warning = or_(
        func.substr(request_id, 1, len(WARNING_ID_PREFIX)) == WARNING_ID_PREFIX,
        func.substr(request_id, func.length(merchant) + 1, len(marked)) == marked,
    )
    query = (
        select(merchant, status, currency, func.count(), func.sum(col(RefundRow.amount)))
        .where(on_warning, col(RefundRow.amount).is_not(None), currency.is_not(None))
        .group_by(merchant, status, currency)
    )
    if only is not None:
        query = query.where(merchant.is_(None) if only == default_merchant else merchant == only)
    return [
        WarningRefund(
            merchant_id=owner or default_merchant,
            status=RefundStatus(state),
            amount=Money(value=int(total or 0), currency=code),
            refunds=count,
        )
        for owner, state, code, count, total in session.execute(query.order_by(merchant, status, currency))
    ]
