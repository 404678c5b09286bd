"""RefundWorkflow: one signed refund request, from validation to a balanced ledger.

`_process` reads as the flow in docs/architecture.md: validate, amount, risk, review, reserve, refund
at the PSP, confirm, post. Pure decisions (amount, risk, the review rules) are domain code; every
call to the outside world goes through `Steps` (steps.py), which knows how each activity is called.
The review, the PSP's confirmation and returned goods are parts of their own, composed here.
"""

from __future__ import annotations

import asyncio
import functools
import itertools

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain.amount import refund_amount
    from domain.contracts import (
        CancelInput,
        FinishInput,
        PaymentRecord,
        PspRefundUpdate,
        RefundResult,
        RefundState,
        RefundWorkflowInput,
        Reservation,
        ReserveInput,
        RetryInput,
        ReviewInput,
        RiskSignals,
        ValidateInput,
        VoidApprovalInput,
    )
    from domain.fx import FxFacts
    from domain.money import Money
    from domain.naming import SA_AMOUNT, SA_CURRENCY, SA_RISK_SCORE
    from domain.returns import GoodsReceipt, ReturnsState, ReturnsStatus, expected_returns
    from domain.risk import assess_risk, held
    from domain.status import ErrorCode, PaymentState, PspRefundStatus, RefundMethod, RefundStatus

from workflows.refund.attention import Attention, Stop
from workflows.refund.confirmation import Confirmation
from workflows.refund.patches import Patches
from workflows.refund.record import RefundRecord
from workflows.refund.returns import Returns
from workflows.refund.review import Review
from workflows.refund.steps import Steps


@workflow.defn(name="RefundWorkflow")
class RefundWorkflow:
    @workflow.init
    def __init__(self, input: RefundWorkflowInput) -> None:
        self._input = input
        self._patches = Patches()  # decided at the start of `run`
        self._record = RefundRecord(_received(input))
        self._attention = Attention(self._record, self._patches)
        self._steps = Steps(input, self._patches, before_call=self._record.publish_now)
        self._review = Review(input, self._record, self._steps, self._patches)
        self._psp = Confirmation(input, self._record, self._steps, self._attention, self._patches)
        self._returns = Returns(input, self._record, self._steps, self._attention)
        self._signals = RiskSignals()
        self._fx: FxFacts | None = None
        self._fee_returned: Money | None = None
        self._checker: asyncio.Task[None] | None = None

    @property
    def _state(self) -> RefundState:
        return self._record.state

    # ---- Temporal entry point: bookkeeping around the business steps -------------------------

    @workflow.run
    async def run(self, input: RefundWorkflowInput) -> RefundState:
        self._patches.decide()  # first, before any local activity (docs/architecture.md)
        if self._patches.outcome_proofs:
            # a PSP word without a proof this refund's keys verify is asked about as it comes
            self._checker = asyncio.create_task(self._psp.check_refused())
        # Returned goods are restocked as they arrive, whatever the refund is doing meanwhile.
        returns = asyncio.create_task(self._returns.collect()) if self._returns.expected else None
        try:
            await self._process()
        except Stop as stop:
            await self._finish(stop.status, stop.code, stop.message)
        await self._watch_for_late_failure(returns)
        await self._record.wait(workflow.all_handlers_finished)
        await self._review.notices_sent()
        while True:
            if (late := self._psp.late_failure()) is not None:
                await self._psp.reverse(late)  # a failure signalled as the workflow was about to end
            if self._checker is None or self._psp.refused_checked():
                return self._state
            # a word signalled as it was about to end, asked about before the run ends (written to
            # the trail when unproven; a proven one may be a failure to reverse)
            await workflow.wait_condition(self._psp.refused_checked)

    async def _watch_for_late_failure(self, returns: asyncio.Task[None] | None) -> None:
        """While the refund stays open (goods still to come back), a PSP failure after success
        reverses the books here; once closed, the webhook route starts a workflow that does."""
        while True:
            late = self._psp.late_failure()
            if late is not None:
                await self._psp.reverse(late)
            if returns is None or returns.done():
                if returns is not None:
                    await returns
                return
            if self._patches.edge_paths:
                self._record.publish_now()  # the final status reaches the search attributes now
            # no `record.wait`: histories recorded before EDGE_PATHS upsert nothing here
            await workflow.wait_condition(lambda: returns.done() or self._psp.late_failure() is not None)

    # ---- the business process -----------------------------------------------------------------

    async def _process(self) -> None:
        request, policy = self._input.request, self._input.policy

        self._record.set_status(RefundStatus.VALIDATING)
        payment = await self._validate()

        decision = refund_amount(request, payment, policy.shipping_policy)
        if decision.amount is None:
            # the request is authentic and the payment found (`validated`); what it asks is not
            # refundable: the trail says so as its own step, not only in the final status
            self._record.note(
                "amount_refused",
                reason_code=decision.error.value if decision.error else None,
                detail={"message": decision.message[:500]},
            )
            raise Stop(RefundStatus.FAILED, decision.error, decision.message)
        amount = decision.amount
        method = _method_for(payment, amount)
        self._record.update(amount=amount, method=method, allocation=decision.allocation)
        self._record.publish(SA_AMOUNT.value_set(amount.value), SA_CURRENCY.value_set(amount.currency))

        self._record.set_status(RefundStatus.SCORING)
        risk = assess_risk(
            request, payment, amount, policy, self._signals, workflow.now(), self._input.risk_model
        )
        risk = held(risk, self._input.held_for)
        self._record.update(risk=risk)
        self._record.publish(SA_RISK_SCORE.value_set(risk.score))
        self._record.note(
            "risk_scored",
            detail={
                "score": str(risk.score),
                "reasons": ",".join(r.code for r in risk.reasons),
                "policy_version": risk.policy_version,
                "approvals_needed": str(risk.approvals_needed),
            },
            reason_code="review_required" if risk.requires_review else "auto_approved",
        )

        if risk.requires_review:
            await self._review.decision()

        self._record.set_status(RefundStatus.REFUNDING)
        await self._reserve(payment, amount)
        result = await self._psp.refund(payment, amount, method)
        self._fx = _fx_facts(payment, result)
        self._fee_returned = result.fee_returned

        if result.status is PspRefundStatus.PENDING:
            self._record.set_status(RefundStatus.AWAITING_CONFIRMATION)
            result = await self._psp.confirmed(result)

        if result.status is PspRefundStatus.SUCCEEDED:
            await self._finish(RefundStatus.SUCCEEDED, None, "")
        else:
            raise Stop(RefundStatus.FAILED, result.failure_code, result.failure_message)

    async def _validate(self) -> PaymentRecord:
        """A disputed payment waits for ops (refunding it could pay the customer twice), and so does
        a PSP account ops must fix."""
        for validation_round in itertools.count(1):
            check = ValidateInput(
                request=self._input.request,
                evidence=self._input.evidence,
                merchant_id=self._input.merchant_id,
                audit=self._record.drain_audit(),
                round=validation_round,
                requested_by=self._input.requested_by,
            )
            validation = await self._attention.until_done(functools.partial(self._steps.validate, check))
            if not self._ops_can_fix(validation.error):
                break
            assert validation.error is not None
            await self._attention.wait_for_ops(validation.error, validation.message, cancellable=True)
            self._attention.stop_if_cancelled(validation.error)
        if validation.payment is None:
            code = validation.error or ErrorCode.PAYMENT_NOT_FOUND
            raise Stop(RefundStatus.FAILED, code, validation.message)
        self._signals = validation.signals
        return validation.payment

    def _ops_can_fix(self, error: ErrorCode | None) -> bool:
        """A dispute ops may release; a PSP key ops may rotate. Both are retried, never failed."""
        if error is ErrorCode.PAYMENT_DISPUTED:
            return True
        return error is ErrorCode.PSP_AUTH_FAILED and self._patches.edge_paths

    async def _reserve(self, payment: PaymentRecord, amount: Money) -> None:
        """A dispute opened after validation (while the refund waited for review) stops the refund
        before its money moves, and ops decide, as at validation."""
        while True:
            hold = ReserveInput(
                request_id=self._state.request_id,
                merchant_id=self._input.merchant_id,
                payment=payment,
                amount=amount,
                allocation=self._state.allocation,
                audit=self._record.drain_audit(),
            )
            step = functools.partial(self._steps.reserve, hold)
            reservation: Reservation = await self._attention.until_done(step)
            if reservation.refusal is not ErrorCode.PAYMENT_DISPUTED:
                break
            await self._attention.wait_for_ops(
                ErrorCode.PAYMENT_DISPUTED, reservation.message, cancellable=True
            )
            self._attention.stop_if_cancelled(ErrorCode.PAYMENT_DISPUTED)
        if not reservation.granted:
            raise Stop(
                RefundStatus.FAILED,
                reservation.refusal or ErrorCode.REFUND_EXCEEDS_CAPTURE,
                f"{Money(value=reservation.available, currency=amount.currency)} left to refund",
            )

    async def _finish(self, status: RefundStatus, code: ErrorCode | None, message: str) -> None:
        """Commit or release the reservation, post the ledger, write the audit: one activity.

        The final status is shown only once the books are written, so `succeeded` means posted.
        """
        # the trail says why a refund ended without its money moving, not only that it did
        self._record.note(
            "status_changed",
            status_before=self._state.status,
            status_after=status,
            reason_code=code.value if code else None,
            detail={"message": message[:500]} if message else None,
        )
        state = self._state
        books = FinishInput(
            request_id=state.request_id,
            merchant_id=self._input.merchant_id,
            provider=state.provider,
            payment_reference=state.payment_reference,
            order_id=state.order_id,
            status=status,
            amount=state.amount,
            method=state.method,
            psp_refund_id=state.psp_refund_id,
            failure_code=code,
            allocation=state.allocation,
            fx=self._fx,
            fee_returned=self._fee_returned,
            audit=self._record.drain_audit(),
            request_digest=self._input.request.digest_for(self._input.merchant_id),
            requested_by=self._input.requested_by,
        )
        await self._attention.until_done(lambda: self._steps.finish(books))
        self._record.update(failure_code=code, failure_message=message)
        self._record.set_status(status, audited=False)
        self._count_finished(status)

    def _count_finished(self, status: RefundStatus) -> None:
        """Refunds by final status and provider, and time to success (skipped during replay)."""
        meter = workflow.metric_meter().with_additional_attributes(
            {"provider": self._state.provider.value, "status": status.value}
        )
        meter.create_counter("refunds_finished", "Refunds by final status").add(1)
        if status is RefundStatus.SUCCEEDED:
            waited = workflow.now() - workflow.info().start_time
            meter.create_histogram_timedelta("refunds_time_to_success", "Request to success", "ms").record(
                waited
            )

    # ---- messages from the service, ops, the Temporal UI and PSPs ------------------------------

    @workflow.query
    def state(self) -> RefundState:
        return self._state

    @workflow.update
    def approve(self, review: ReviewInput) -> RefundState:
        self._review.decide(review, approved=True)
        return self._state

    @approve.validator
    def _validate_approve(self, review: ReviewInput) -> None:
        self._review.check_update(review, approved=True)

    @workflow.update
    def reject(self, review: ReviewInput) -> RefundState:
        self._review.decide(review, approved=False)
        return self._state

    @reject.validator
    def _validate_reject(self, review: ReviewInput) -> None:
        self._review.check_update(review, approved=False)

    @workflow.update
    def void_approval(self, request: VoidApprovalInput) -> RefundState:
        """Ops take back a person's approvals of a refund still awaiting review (review.py `void`)."""
        self._review.void(request)
        return self._state

    @void_approval.validator
    def _validate_void_approval(self, request: VoidApprovalInput) -> None:
        self._review.check_void(request)

    @workflow.update
    def retry(self, request: RetryInput) -> RefundState:
        self._attention.retry(request.operator)
        return self._state

    @retry.validator
    def _validate_retry(self, request: RetryInput) -> None:
        self._attention.check_retry()

    @workflow.update
    def cancel(self, request: CancelInput) -> RefundState:
        """Ops end a refund waiting for them before its PSP call (a dispute never released, say)."""
        self._attention.cancel(request)
        return self._state

    @cancel.validator
    def _validate_cancel(self, request: CancelInput) -> None:
        self._attention.check_cancel()

    @workflow.update
    def goods_received(self, receipt: GoodsReceipt) -> ReturnsState:
        return self._returns.receive(receipt)

    @goods_received.validator
    def _validate_goods_received(self, receipt: GoodsReceipt) -> None:
        self._returns.check(receipt)

    @workflow.signal
    def approve_from_ui(self, review: ReviewInput) -> None:
        """For the Temporal UI, which sends signals: the same checks; a refused one is audited."""
        self._review.signalled(review, approved=True)

    @workflow.signal
    def reject_from_ui(self, review: ReviewInput) -> None:
        self._review.signalled(review, approved=False)

    @workflow.signal
    def psp_refund_update(self, update: PspRefundUpdate) -> None:
        self._psp.record(update)


def _received(input: RefundWorkflowInput) -> RefundState:
    """The refund as it was received, before any step."""
    request = input.request
    expected = expected_returns(request, input.policy.no_return_reasons)
    return RefundState(
        request_id=request.request_id,
        provider=request.provider,
        payment_reference=request.payment_reference,
        order_id=request.order_id,
        status=RefundStatus.RECEIVED,
        merchant_id=input.merchant_id,
        requested_by=input.requested_by,
        requested_amount=request.amount,
        returns=ReturnsState(
            status=ReturnsStatus.AWAITING_GOODS if expected else ReturnsStatus.NONE, expected=expected
        ),
    )


def _method_for(payment: PaymentRecord, amount: Money) -> RefundMethod:
    """An uncaptured authorisation is cancelled, never refunded; it cannot be cancelled in part."""
    if payment.state is PaymentState.CAPTURED:
        return RefundMethod.REFUND
    if payment.state is PaymentState.AUTHORIZED and amount.value == payment.amount_authorized:
        return RefundMethod.VOID
    raise Stop(
        RefundStatus.FAILED,
        ErrorCode.PAYMENT_NOT_REFUNDABLE,
        f"payment is {payment.state.value}; only a full void of an authorisation is possible",
    )


def _fx_facts(payment: PaymentRecord, result: RefundResult) -> FxFacts | None:
    """The PSP's settlement amounts, when the payment settled in another currency."""
    if payment.settlement is None or result.settlement is None or not payment.amount_captured:
        return None
    return FxFacts(
        captured=Money(value=payment.amount_captured, currency=payment.currency),
        captured_settled=payment.settlement,
        refund_settled=result.settlement,
    )
