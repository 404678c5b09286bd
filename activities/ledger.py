"""Reserve before the PSP call; post, void or reverse after it. Each step is one transaction with its
reservation change, its ledger transfers (and their export outbox rows) and its audit rows."""

from __future__ import annotations

from sqlalchemy.orm import Session
from temporalio import activity

from activities.audit import activity_event
from activities.errors import refuse_foreign_refund
from activities.merchant import Merchants
from adapters.db import audit, clients, holds, ledger, refunds, reservations
from adapters.db.engine import Database
from adapters.db.models import RefundRow
from adapters.db.refunds import SettledRefund
from adapters.db.reservations import ReservationState
from domain import postings
from domain.contracts import (
    AuditEvent,
    ExternalRefundInput,
    FinishInput,
    LateFailureInput,
    Reservation,
    ReserveInput,
)
from domain.fx import fx_difference
from domain.money import Money
from domain.naming import REFUND_WORKFLOW, Activity, external_refund_workflow_id, external_request_id
from domain.status import ErrorCode, RefundStatus


def _settled(outcome: FinishInput) -> SettledRefund:
    return SettledRefund(
        request_id=outcome.request_id,
        provider=outcome.provider,
        payment_reference=outcome.payment_reference,
        order_id=outcome.order_id,
        merchant_id=outcome.merchant_id,
        status=outcome.status,
        method=outcome.method,
        amount=outcome.amount,
        psp_refund_id=outcome.psp_refund_id,
        failure_code=outcome.failure_code,
        allocation=outcome.allocation,
        request_digest=outcome.request_digest,
        requested_by=outcome.requested_by,
    )


class LedgerActivities:
    def __init__(self, db: Database, merchant_id: str) -> None:
        self._db = db
        self._merchants = Merchants(merchant_id)

    @activity.defn(name=Activity.RESERVE)
    def reserve(self, input: ReserveInput) -> Reservation:
        refuse_foreign_refund(input.request_id)
        with self._db.transaction() as session:
            settled = refunds.get(session, input.request_id)
            if settled is not None and settled.status != RefundStatus.SUCCEEDED.value:
                # settled without its money moving (rejected, failed, cancelled): a run of its
                # workflow reset or started again by hand reserves nothing (a succeeded one is
                # refused below, its reservation committed)
                message = f"refund {input.request_id} was settled ({settled.status}) already"
                return Reservation(granted=False, refusal=ErrorCode.ALREADY_FINISHED, message=message)
            # a dispute opened since validation (while the refund waited for review, say): refunding
            # now could pay the customer twice, so the refund waits for ops as at validation
            dispute = holds.held(session, input.payment.provider, input.payment.reference)
            if dispute is not None:
                event = activity_event(
                    "ledger:reserve:disputed",
                    "reservation_refused",
                    reason_code=ErrorCode.PAYMENT_DISPUTED.value,
                    detail={"hold": dispute},
                )
                audit.record(session, input.request_id, input.payment.reference, [*input.audit, event])
                message = f"payment {input.payment.reference} is on hold: {dispute}"
                return Reservation(granted=False, refusal=ErrorCode.PAYMENT_DISPUTED, message=message)
            outcome = reservations.reserve(session, input.request_id, input.payment, input.amount)
            if outcome.granted:
                merchant = self._merchants.named(input.merchant_id)
                held = postings.reservation(
                    input.request_id, merchant, outcome.holds, input.amount, input.allocation
                )
                ledger.hold(session, held, description=f"reserved for refund of {input.payment.reference}")
            event = activity_event(
                "ledger:reserve",
                "amount_reserved" if outcome.granted else "reservation_refused",
                reason_code=outcome.refusal.value if outcome.refusal else "ok",
                detail={"amount": str(input.amount.value), "available": str(outcome.available)},
            )
            audit.record(session, input.request_id, input.payment.reference, [*input.audit, event])
        return Reservation(granted=outcome.granted, available=outcome.available, refusal=outcome.refusal)

    @activity.defn(name=Activity.FINISH)
    def finish(self, outcome: FinishInput) -> None:
        """Money moved (a refund succeeded): post the pending costs and the PSP's payout. Nothing
        moved (a void, a refusal, a rejection): void them."""
        refuse_foreign_refund(outcome.request_id)
        moved = postings.money_moved(outcome.status, outcome.method, outcome.amount)
        events = list(outcome.audit)
        with self._db.transaction() as session:
            if refunds.get(session, outcome.request_id) is not None:
                # settled already (this step's own retry, or a run the database outlived): the
                # books and the row stand as they are
                audit.record(session, outcome.request_id, outcome.payment_reference, events)
                return
            succeeded = outcome.status is RefundStatus.SUCCEEDED
            settled_as = ReservationState.COMMITTED if succeeded else ReservationState.RELEASED
            if reservations.settle(session, outcome.request_id, settled_as):
                events.append(activity_event("ledger:settle", f"reservation_{settled_as.value}"))
            why = f"refund {outcome.psp_refund_id or '-'} of order {outcome.order_id}"
            resolved = ledger.resolve(session, outcome.request_id, post=moved, description=why)
            if moved and outcome.amount is not None:
                amount = outcome.amount
                merchant = self._merchants.named(outcome.merchant_id)
                provider = outcome.provider.value
                for payout in postings.payout_postings(
                    outcome.request_id, merchant, provider, amount, outcome.fx
                ):
                    ledger.post(session, payout, description=why)
                if outcome.fee_returned is not None:
                    for returned in postings.fee_returned_postings(
                        outcome.request_id, merchant, provider, outcome.fee_returned
                    ):
                        ledger.post(session, returned, description=f"fee returned with {why}")
                detail = {"amount": str(amount.value), "currency": amount.currency}
                if outcome.fee_returned is not None:
                    detail["fee_returned"] = str(outcome.fee_returned.value)
                if outcome.fx is not None:
                    detail |= {
                        "settled": str(outcome.fx.refund_settled),
                        "fx_difference": str(fx_difference(amount, outcome.fx)),
                    }
                events.append(activity_event("ledger:post", "ledger_posted", detail=detail))
            elif resolved:
                events.append(
                    activity_event("ledger:void", "ledger_voided", detail={"transfers": str(resolved)})
                )
            if not succeeded and clients.release(session, outcome.request_id):
                # a client's refund that moved no money gives its budget back, once: the row above
                # is written once, and only a reserved budget is released
                events.append(activity_event("client:budget", "client_budget_released"))
            refunds.save_outcome(session, _settled(outcome))
            audit.record(session, outcome.request_id, outcome.payment_reference, events)

    @activity.defn(name=Activity.REVERSE)
    def reverse(self, late: LateFailureInput) -> bool:
        """Reverse a succeeded refund's posting once and mark it failed; anything else is a no-op."""
        refuse_foreign_refund(late.request_id)
        with self._db.transaction() as session:
            # locked: the refund's own workflow and the late-failure workflow may both try; the
            # second must see the first's `failed`, never reverse the reversal
            row = refunds.get(session, late.request_id, for_update=True)
            if row is None and (legacy := self._booked_before(session, late)) is not None:
                late, row = legacy
            if row is None and late.request_id == external_request_id(
                late.provider.value, late.update.psp_refund_id, late.merchant_id
            ):
                self._failed_before_booked(session, late)
                return False
            if row is None or row.status != RefundStatus.SUCCEEDED.value:
                return False
            posted = ledger.transfers(session, late.request_id, posted_only=True)
            if row.psp_refund_id != late.update.psp_refund_id or row.provider != late.provider.value:
                # not this refund's PSP refund (or PSP: a word proven for a refund at Stripe and read
                # back there is no Adyen word)
                return False
            reporting = self._merchants.named(late.merchant_id)
            if any(transfer.merchant != reporting for transfer in posted):
                # another merchant's account reporting (a PSP that is not read back, Adyen, gets
                # this far): refused, on the refund's trail for ops
                why = f"reported by merchant {reporting}'s account, the refund is another merchant's"
                event = _failure_event(
                    f"late_failure:foreign:{late.update.psp_event_id or late.update.psp_refund_id}",
                    "psp_update_unproven",
                    late,
                    why=why,
                )
                audit.record(session, late.request_id, row.payment_reference, [event])
                return False
            given_back = late.update.amount
            refunded = (row.amount, row.currency)
            if given_back is not None and (given_back.value, given_back.currency) != refunded:
                # the PSP gave back another amount than the refund's (part of it): a reversal undoes
                # whole postings, so ops reverse it by hand (`refunds attention` lists it)
                whole = Money(value=row.amount or 0, currency=row.currency or given_back.currency)
                self._not_reversed(session, late, row.payment_reference, f"{given_back} of {whole}")
                return False
            why = f"reversal: {late.provider.value} failed refund {late.update.psp_refund_id}"
            for reversal in postings.reversal_postings(late.request_id, posted):
                ledger.post(session, reversal, description=why)
            code = late.update.failure_code or ErrorCode.PSP_DECLINED
            # the PSP gave the money back to the payment: the over-refund guard gives it back too
            reservations.give_back(session, late.request_id)
            row.status = RefundStatus.FAILED.value
            row.failure_code = code.value
            clients.release(session, late.request_id)  # the money came back: so does a client's budget
            event = _failure_event("late_failure", "late_failure_reversed", late)
            event = event.model_copy(
                update={"status_before": RefundStatus.SUCCEEDED, "status_after": RefundStatus.FAILED}
            )
            # rows the refund's own workflow wrote; an input started by hand carries none that count
            carried = late.audit if activity.info().workflow_type == REFUND_WORKFLOW else []
            audit.record(session, late.request_id, row.payment_reference, [*carried, event])
            return True

    def _booked_before(
        self, session: Session, late: LateFailureInput
    ) -> tuple[LateFailureInput, RefundRow] | None:
        """A merchant's dashboard refund booked before its id named the merchant (`external:<psp>:<id>`),
        found for its own merchant only."""
        if late.merchant_id is None or late.request_id != external_request_id(
            late.provider.value, late.update.psp_refund_id, late.merchant_id
        ):
            return None
        legacy = external_request_id(late.provider.value, late.update.psp_refund_id)
        row = refunds.get(session, legacy, for_update=True)
        if row is None or row.merchant != late.merchant_id:
            return None
        return late.model_copy(update={"request_id": legacy}), row

    def _not_reversed(
        self, session: Session, late: LateFailureInput, reference: str, given_back: str
    ) -> None:
        event = _failure_event(
            f"late_failure:not_reversed:{late.update.psp_event_id or late.update.psp_refund_id}",
            "late_failure_not_reversed",
            late,
            why=f"the PSP gave back {given_back}: reverse by hand",
        )
        audit.record(session, late.request_id, reference, [event])

    def _failed_before_booked(self, session: Session, late: LateFailureInput) -> None:
        """A dashboard refund the PSP failed before we booked its success (Adyen's REFUND_FAILED
        delivered before its REFUND: Adyen promises no order): its row says so, so the success that
        follows books nothing."""
        code = late.update.failure_code or ErrorCode.PSP_DECLINED
        refunds.save_outcome(
            session,
            SettledRefund(
                request_id=late.request_id,
                provider=late.provider,
                payment_reference=late.payment_reference,
                status=RefundStatus.FAILED,
                merchant_id=late.merchant_id,
                amount=late.update.amount,
                psp_refund_id=late.update.psp_refund_id,
                failure_code=code,
            ),
        )
        event = _failure_event("external:failed", "external_refund_failed", late)
        audit.record(session, late.request_id, late.payment_reference, [event])

    @activity.defn(name=Activity.RECORD_EXTERNAL)
    def record_external(self, refund: ExternalRefundInput) -> bool:
        """Book a dashboard refund once: its posting, a committed reservation, its row and audit."""
        outcome = refund.outcome
        if outcome is None or outcome.amount is None:
            return False
        addressed = activity.info().workflow_id
        if outcome.psp_refund_id != refund.psp_refund_id or addressed != external_refund_workflow_id(
            refund.provider.value, refund.psp_refund_id, refund.merchant_id
        ):
            # the word was proven for the workflow the service starts for its PSP refund; an input
            # started by hand under that id naming another refund (or PSP) would book it twice
            return False
        request_id = external_request_id(refund.provider.value, refund.psp_refund_id, refund.merchant_id)
        amount = outcome.amount
        merchant, provider = self._merchants.named(refund.merchant_id), refund.provider.value
        with self._db.transaction() as session:
            settled = refunds.get(session, request_id, for_update=True)
            if settled is not None and settled.status != RefundStatus.SUCCEEDED.value:
                # the PSP failed it first (its words came out of order): a failed refund books nothing
                event = activity_event(
                    "external:success_after_failure",
                    "psp_update_contradicted",
                    actor=f"psp:{provider}",
                    reason_code=outcome.status.value,
                    detail={
                        "psp_refund_id": refund.psp_refund_id,
                        "why": f"a success after the PSP's failure ({settled.failure_code or ''})",
                    },
                )
                audit.record(session, request_id, refund.payment_reference, [event])
                return False
            posted = ledger.post(
                session,
                postings.external_refund(request_id, merchant, provider, amount),
                description=f"refund {refund.psp_refund_id} made outside the product",
            )
            if not posted:
                return False
            reservations.record_external(
                session, request_id, refund.provider, refund.payment_reference, amount
            )
            refunds.save_outcome(
                session,
                SettledRefund(
                    request_id=request_id,
                    provider=refund.provider,
                    payment_reference=refund.payment_reference,
                    status=RefundStatus.SUCCEEDED,
                    merchant_id=refund.merchant_id,
                    amount=amount,
                    psp_refund_id=refund.psp_refund_id,
                ),
            )
            event = activity_event(
                "external",
                "external_refund_adopted",
                actor=f"psp:{provider}",
                reason_code="not_requested_by_us",
                detail={"psp_refund_id": refund.psp_refund_id, "psp_event_id": outcome.psp_event_id or ""},
            )
            audit.record(session, request_id, refund.payment_reference, [event])
        return True


def _failure_event(key: str, step: str, late: LateFailureInput, why: str | None = None) -> AuditEvent:
    """The trail's row for a PSP's failure of a refund: what the PSP said, and what we did of it."""
    detail = {"psp_refund_id": late.update.psp_refund_id, "psp_event_id": late.update.psp_event_id or ""}
    detail |= {"why": why} if why is not None else {"message": late.update.failure_message[:500]}
    return activity_event(
        key,
        step,
        actor=f"psp:{late.provider.value}",
        reason_code=(late.update.failure_code or ErrorCode.PSP_DECLINED).value,
        detail=detail,
    )
