"""Reserve before the PSP call; commit, release and post after it. Each in one transaction."""

from __future__ import annotations

from temporalio import activity

from activities.audit import activity_event
from adapters.db import audit, ledger, refunds, reservations
from adapters.db.engine import Database
from adapters.db.reservations import ReservationState
from domain.contracts import FinishInput, Reservation, ReserveInput
from domain.naming import Activity
from domain.status import RefundMethod, RefundStatus


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
