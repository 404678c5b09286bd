"""The over-refund guard: reservations against a payment's refundable amount under its row lock."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlmodel import col

from adapters.db.dialect import insert_ignoring_conflicts
from adapters.db.models import PaymentRow, ReservationRow, utcnow
from domain.contracts import PaymentRecord
from domain.money import Money
from domain.status import ErrorCode, Provider


class ReservationState(StrEnum):
    HELD = "held"
    COMMITTED = "committed"
    RELEASED = "released"


@dataclass(frozen=True)
class ReserveOutcome:
    granted: bool
    available: int
    refusal: ErrorCode | None = None
    holds: int = 1  # how many times this request held money: the ledger keys each hold apart


def payment_key(payment: PaymentRecord) -> str:
    """One key per payment, however a request named it (a Stripe charge or its PaymentIntent)."""
    return f"{payment.provider.value}:{payment.guard_reference}"


def reserve(session: Session, request_id: str, payment: PaymentRecord, amount: Money) -> ReserveOutcome:
    """Hold `amount` for this refund unless held and committed refunds would exceed the cap.

    Idempotent: a request that already holds its reservation is granted again; one whose
    reservation was committed is refused as already refunded, whatever Temporal remembers.
    The payment row is locked (SELECT ... FOR UPDATE; SQLite takes its write lock at BEGIN), so
    concurrent partial refunds of one payment are decided one after the other.
    """
    key = payment_key(payment)
    cap = payment.amount_captured or payment.amount_authorized
    _ensure_payment(session, key, payment.provider, payment.reference, payment.currency, cap)
    row = session.execute(
        select(PaymentRow).where(col(PaymentRow.payment_key) == key).with_for_update()
    ).scalar_one()
    # a payment first seen through a dashboard refund was recorded with only what that refund proved
    row.refundable_cap = max(row.refundable_cap, cap)
    existing = session.get(ReservationRow, request_id)
    # every refund of the payment counts, whoever made it: ours (held or committed) and what the PSP
    # itself says it refunded, which includes dashboard refunds whose events never reached us
    available = row.refundable_cap - max(_in_use(session, key), payment.amount_refunded)
    if existing is not None and existing.state == ReservationState.HELD:
        return ReserveOutcome(True, available, holds=existing.holds)  # a retry of this step
    if existing is not None and existing.state == ReservationState.COMMITTED:
        # this request id was refunded before (e.g. its workflow aged out of Temporal's retention)
        return ReserveOutcome(False, max(available, 0), ErrorCode.ALREADY_REFUNDED)
    if amount.value > available:
        return ReserveOutcome(False, max(available, 0), ErrorCode.REFUND_EXCEEDS_CAPTURE)
    if existing is None:
        existing = ReservationRow(
            request_id=request_id,
            payment_key=key,
            amount=amount.value,
            currency=amount.currency,
            state=ReservationState.HELD,
            holds=1,
            updated_at=utcnow(),
        )
        session.add(existing)
    else:
        existing.state = ReservationState.HELD
        existing.amount = amount.value
        existing.holds += 1
        existing.updated_at = utcnow()
    return ReserveOutcome(True, available - amount.value, holds=existing.holds)


def _ensure_payment(
    session: Session, key: str, provider: Provider, reference: str, currency: str, cap: int
) -> None:
    insert_ignoring_conflicts(
        session,
        PaymentRow,
        [
            {
                "payment_key": key,
                "provider": provider.value,
                "reference": reference,
                "currency": currency,
                "refundable_cap": cap,
                "updated_at": utcnow(),
            }
        ],
    )


def record_external(
    session: Session, request_id: str, provider: Provider, reference: str, amount: Money
) -> None:
    """Count a refund made outside the product against the payment, committed: it already happened
    at the PSP, so it counts even past our own cap. A payment we never refunded is recorded with what
    this refund proves was captured; the first refund of ours raises that to the PSP's capture."""
    key = f"{provider.value}:{reference}"
    _ensure_payment(session, key, provider, reference, amount.currency, amount.value)
    session.execute(select(PaymentRow).where(col(PaymentRow.payment_key) == key).with_for_update())
    if session.get(ReservationRow, request_id) is not None:
        return
    session.add(
        ReservationRow(
            request_id=request_id,
            payment_key=key,
            amount=amount.value,
            currency=amount.currency,
            state=ReservationState.COMMITTED,
            updated_at=utcnow(),
        )
    )


def give_back(session: Session, request_id: str) -> bool:
    """A refund the PSP failed after it succeeded: the PSP gave the whole amount back to the payment,
    so the guard does too (held or committed; a released one is left as it is)."""
    row = session.get(ReservationRow, request_id, with_for_update=True)
    if row is None or row.state == ReservationState.RELEASED:
        return False
    row.state = ReservationState.RELEASED
    row.updated_at = utcnow()
    return True


def refunded(session: Session, payment: PaymentRecord, excluding: str | None = None) -> int:
    """What our record says is refunded or being refunded on the payment, whoever asked (ours, a
    dashboard's, a fraud warning's): for a PSP that cannot be asked (Adyen) it is the whole record.
    `excluding`: the refund asking, whose own reservation is no earlier refund of the payment (its
    validation runs again when the workflow task that validated and reserved was lost)."""
    return _in_use(session, payment_key(payment), excluding)


def committed(session: Session, payment: PaymentRecord) -> int:
    """What the payment's refunds took for good in our record (made and succeeded, whoever asked),
    as a PSP's own refunded figure says: no refund still on its way, the asking one included."""
    return _in_use(session, payment_key(payment), states=(ReservationState.COMMITTED,))


def settle(session: Session, request_id: str, state: ReservationState) -> bool:
    """Commit or release a held reservation; a settled one is left as it is."""
    row = session.get(ReservationRow, request_id, with_for_update=True)
    if row is None or row.state != ReservationState.HELD:
        return False
    row.state = state
    row.updated_at = utcnow()
    return True


def _in_use(
    session: Session,
    key: str,
    excluding: str | None = None,
    states: tuple[ReservationState, ...] = (ReservationState.HELD, ReservationState.COMMITTED),
) -> int:
    query = select(func.coalesce(func.sum(ReservationRow.amount), 0)).where(
        col(ReservationRow.payment_key) == key,
        col(ReservationRow.state).in_([state.value for state in states]),
    )
    if excluding is not None:
        query = query.where(col(ReservationRow.request_id) != excluding)
    return int(session.execute(query).scalar_one())
