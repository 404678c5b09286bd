"""Reserve before the PSP call; commit, release and post after it. Each in one transaction."""

from __future__ import annotations

from temporalio import activity

from activities.audit import activity_event
from adapters.db import audit, ledger, refunds, reservations
from adapters.db.engine import Database
from adapters.db.reservations import ReservationState
from domain.contracts import (
    ExternalRefundInput,
    FinishInput,
    LateFailureInput,
    Reservation,
    ReserveInput,
)
from domain.naming import Activity, external_request_id
from domain.status import ErrorCode, RefundMethod, RefundStatus


class LedgerActivities:
    def __init__(self, db: Database, merchant_id: str) -> None:
        self._db = db
        self._merchant = merchant_id

    @activity.defn(name=Activity.RESERVE)
    def reserve(self, input: ReserveInput) -> Reservation:
        with self._db.transaction() as session:
            outcome = reservations.reserve(self._db, session, input.request_id, input.payment, input.amount)
            event = activity_event(
                "ledger:reserve",
                "amount_reserved" if outcome.granted else "reservation_refused",
                reason_code=outcome.refusal.value if outcome.refusal else "ok",
                detail={"amount": str(input.amount.value), "available": str(outcome.available)},
            )
            audit.record(self._db, session, input.request_id, input.payment.reference, [*input.audit, event])
        return Reservation(granted=outcome.granted, available=outcome.available, refusal=outcome.refusal)

    @activity.defn(name=Activity.REVERSE)
    def reverse(self, late: LateFailureInput) -> bool:
        """Reverse a succeeded refund's posting once and mark it failed; anything else is a no-op."""
        with self._db.transaction() as session:
            row = refunds.get(session, late.request_id)
            if row is None or row.status != RefundStatus.SUCCEEDED.value:
                return False
            original = ledger.lines_of(session, f"{late.request_id}:refund")
            if original:
                ledger.post(
                    self._db,
                    session,
                    posting_key=f"{late.request_id}:reversal",
                    request_id=late.request_id,
                    currency=original[0].currency,
                    description=f"reversal: {late.provider.value} failed refund {late.update.psp_refund_id}",
                    lines=[
                        ledger.Line(line.account, debit=line.credit, credit=line.debit) for line in original
                    ],
                )
            code = late.update.failure_code or ErrorCode.PSP_DECLINED
            row.status = RefundStatus.FAILED.value
            row.failure_code = code.value
            event = activity_event(
                "late_failure",
                "late_failure_reversed",
                actor=f"psp:{late.provider.value}",
                reason_code=code.value,
                detail={
                    "psp_refund_id": late.update.psp_refund_id,
                    "psp_event_id": late.update.psp_event_id or "",
                    "message": late.update.failure_message[:500],
                },
            )
            event = event.model_copy(
                update={"status_before": RefundStatus.SUCCEEDED, "status_after": RefundStatus.FAILED}
            )
            audit.record(self._db, session, late.request_id, row.payment_reference, [event])
            return True

    @activity.defn(name=Activity.RECORD_EXTERNAL)
    def record_external(self, refund: ExternalRefundInput) -> bool:
        """Book a dashboard refund once: its posting, a committed reservation, its row and audit."""
        outcome = refund.outcome
        if outcome is None or outcome.amount is None:
            return False
        request_id = external_request_id(refund.provider.value, refund.psp_refund_id)
        amount = outcome.amount
        with self._db.transaction() as session:
            posted = ledger.post(
                self._db,
                session,
                posting_key=f"{request_id}:refund",
                request_id=request_id,
                currency=amount.currency,
                description=f"refund {refund.psp_refund_id} made outside the product",
                lines=ledger.refund_lines(
                    refund.provider.value, self._merchant, amount.currency, amount.value
                ),
            )
            if not posted:
                return False
            reservations.record_external(
                session, request_id, refund.provider, refund.payment_reference, amount
            )
            refunds.save_outcome(
                session,
                FinishInput(
                    request_id=request_id,
                    provider=refund.provider,
                    payment_reference=refund.payment_reference,
                    order_id="",
                    status=RefundStatus.SUCCEEDED,
                    amount=amount,
                    psp_refund_id=refund.psp_refund_id,
                ),
            )
            event = activity_event(
                "external",
                "external_refund_adopted",
                actor=f"psp:{refund.provider.value}",
                reason_code="not_requested_by_us",
                detail={"psp_refund_id": refund.psp_refund_id, "psp_event_id": outcome.psp_event_id or ""},
            )
            audit.record(self._db, session, request_id, refund.payment_reference, [event])
        return True

    @activity.defn(name=Activity.FINISH)
    def finish(self, outcome: FinishInput) -> None:
        succeeded = outcome.status is RefundStatus.SUCCEEDED
        events = list(outcome.audit)
        with self._db.transaction() as session:
            settled_as = ReservationState.COMMITTED if succeeded else ReservationState.RELEASED
            if reservations.settle(session, outcome.request_id, settled_as):
                events.append(activity_event("ledger:settle", f"reservation_{settled_as.value}"))
            if succeeded and outcome.method is RefundMethod.REFUND and outcome.amount is not None:
                ledger.post(
                    self._db,
                    session,
                    posting_key=f"{outcome.request_id}:refund",
                    request_id=outcome.request_id,
                    currency=outcome.amount.currency,
                    description=f"refund {outcome.psp_refund_id} of order {outcome.order_id}",
                    lines=ledger.refund_lines(
                        outcome.provider.value,
                        self._merchant,
                        outcome.amount.currency,
                        outcome.amount.value,
                    ),
                )
                events.append(
                    activity_event(
                        "ledger:post",
                        "ledger_posted",
                        detail={
                            "amount": str(outcome.amount.value),
                            "currency": outcome.amount.currency,
                        },
                    )
                )
            refunds.save_outcome(session, outcome)
            audit.record(self._db, session, outcome.request_id, outcome.payment_reference, events)
