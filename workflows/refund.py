"""RefundWorkflow: one signed refund request, from validation to a balanced ledger.

The steps in `_process` follow the flow in docs/architecture.md. Pure decisions (amount, risk) run
here in workflow code; everything that touches the outside world is an activity, called by name so
this module never imports I/O code.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain import identity
    from domain.amount import refund_amount
    from domain.contracts import (
        AuditEvent,
        FinishInput,
        LateFailureInput,
        NotifyInput,
        PaymentRecord,
        PspRefundCall,
        PspRefundUpdate,
        RefundLookup,
        RefundResult,
        RefundState,
        RefundWorkflowInput,
        Reservation,
        ReserveInput,
        RestockInput,
        RestockResult,
        RetryInput,
        ReviewDecision,
        ReviewInput,
        RiskSignals,
        ValidateInput,
        Validation,
    )
    from domain.fx import FxFacts
    from domain.money import Money
    from domain.naming import (
        SA_AMOUNT,
        SA_CURRENCY,
        SA_ESCALATED,
        SA_REVIEW_SINCE,
        SA_RISK_SCORE,
        SA_STATUS,
        Activity,
        psp_task_queue,
    )
    from domain.returns import (
        GoodsReceipt,
        ReturnsState,
        ReturnsStatus,
        expected_returns,
        receipt_problem,
        with_receipt,
        with_restock,
    )
    from domain.risk import assess_risk
    from domain.status import (
        ErrorCode,
        PaymentState,
        PspRefundStatus,
        RefundMethod,
        RefundStatus,
    )

_DB_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=30))
_PSP_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
)
_MAX_POLL_INTERVAL = timedelta(hours=1)

T = TypeVar("T")

# One patch, decided in the workflow's first task (before any local activity: a patch checked right
# after one can replay differently when the original run finished that activity's task early), guards
# what this release schedules differently from recorded histories:
# - a step that fails for good hands the refund to ops (`needs_attention`) instead of failing it;
# - a PSP failure after success is reversed by the refund's own workflow while it is still open;
# - a refund awaiting returned goods shows its final status in the search attributes at once.
EDGE_PATHS = "edge-paths-2026-11"
REVIEW_DEADLINES = "review-deadlines"  # reviews escalate and are decided by policy at their deadlines
PSP_TASK_QUEUES = "psp-task-queues"  # PSP calls run on the PSP's rate-limited task queue

# The PSP's own word that it made no refund: the refund fails and its reservation is released.
# Every other error leaves it unknown whether money moved, so ops decide (`needs_attention`).
_REFUSALS = frozenset(
    {
        ErrorCode.REFUND_EXCEEDS_CAPTURE,
        ErrorCode.ALREADY_REFUNDED,
        ErrorCode.PSP_DECLINED,
        ErrorCode.PAYMENT_NOT_REFUNDABLE,
        ErrorCode.CURRENCY_MISMATCH,
        ErrorCode.INVALID_AMOUNT,
        ErrorCode.NOT_SUPPORTED,
    }
)


class _Stop(Exception):
    """Ends processing with a final status; raised by steps, caught once in `run`."""

    def __init__(self, status: RefundStatus, code: ErrorCode | None, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _fx_facts(payment: PaymentRecord, result: RefundResult) -> FxFacts | None:
    """The PSP's settlement amounts, when the payment settled in another currency."""
    if payment.settlement is None or result.settlement is None or not payment.amount_captured:
        return None
    return FxFacts(
        captured=Money(value=payment.amount_captured, currency=payment.currency),
        captured_settled=payment.settlement,
        refund_settled=result.settlement,
    )


@workflow.defn(name="RefundWorkflow")
class RefundWorkflow:
    @workflow.init
    def __init__(self, input: RefundWorkflowInput) -> None:
        request = input.request
        self._input = input
        expected = expected_returns(request, input.policy.no_return_reasons)
        self._state = RefundState(
            request_id=request.request_id,
            provider=request.provider,
            payment_reference=request.payment_reference,
            order_id=request.order_id,
            status=RefundStatus.RECEIVED,
            merchant_id=input.merchant_id,
            requested_amount=request.amount,
            returns=ReturnsState(
                status=ReturnsStatus.AWAITING_GOODS if expected else ReturnsStatus.NONE, expected=expected
            ),
        )
        self._receipts: list[GoodsReceipt] = []  # accepted, not yet restocked
        self._fx: FxFacts | None = None
        self._signals = RiskSignals()
        self._audit: list[AuditEvent] = []
        self._audit_seq = 0
        self._psp_updates: dict[str, PspRefundUpdate] = {}
        self._late_failures: dict[str, PspRefundUpdate] = {}  # failed after the PSP said succeeded
        self._reversed = False
        self._retry_requested_by: str | None = None
        self._retries = 0  # ops retries so far; each wakes every step waiting in needs_attention
        self._attention_waiters = 0
        self._status_before_attention = RefundStatus.RECEIVED
        self._background: list[asyncio.Task[None]] = []  # notifications: never on the money path
        self._edge_paths = False  # decided at the start of `run` (EDGE_PATHS)
        self._attributes: dict[str, SearchAttributeUpdate[Any]] = {}

    # ---- Temporal entry point: bookkeeping around the business steps -------------------------

    @workflow.run
    async def run(self, input: RefundWorkflowInput) -> RefundState:
        self._edge_paths = workflow.patched(EDGE_PATHS)
        if self._edge_paths:
            # a refund started on this release decides the older patches here too, before any local
            # activity; later checks of them return this answer and record nothing where they stand
            for older in (REVIEW_DEADLINES, PSP_TASK_QUEUES):
                workflow.patched(older)
        # Returned goods are restocked as they arrive, whatever the refund is doing meanwhile.
        returns = None
        if self._state.returns.status is ReturnsStatus.AWAITING_GOODS:
            returns = asyncio.create_task(self._collect_returns())
        try:
            await self._process()
        except _Stop as stop:
            await self._finish(stop.status, stop.code, stop.message)
        await self._watch_for_late_failure(returns)
        await self._wait(workflow.all_handlers_finished)
        if self._background:
            await asyncio.gather(*self._background)
        if (late := self._late_failure()) is not None:
            await self._reverse(late)  # a failure signalled as the workflow was about to end
        return self._state

    async def _watch_for_late_failure(self, returns: asyncio.Task[None] | None) -> None:
        """While the refund stays open (goods still to come back), a PSP failure after success
        reverses the books here; once closed, the webhook route starts a workflow that does."""
        while True:
            late = self._late_failure()
            if late is not None:
                await self._reverse(late)
            if returns is None or returns.done():
                if returns is not None:
                    await returns
                return
            if self._edge_paths:
                self._publish_now()  # the final status reaches the search attributes now
            # no `_wait`: histories recorded before EDGE_PATHS upsert nothing here
            await workflow.wait_condition(lambda: returns.done() or self._late_failure() is not None)

    # ---- the business process -----------------------------------------------------------------

    async def _process(self) -> None:
        request = self._input.request
        policy = self._input.policy

        self._set_status(RefundStatus.VALIDATING)
        payment = await self._validate()

        decision = refund_amount(request, payment, policy.shipping_policy)
        if decision.amount is None:
            raise _Stop(RefundStatus.FAILED, decision.error, decision.message)
        amount = decision.amount
        method = self._method_for(payment, amount)
        self._update(amount=amount, method=method, allocation=decision.allocation)
        self._publish(SA_AMOUNT.value_set(amount.value), SA_CURRENCY.value_set(amount.currency))

        self._set_status(RefundStatus.SCORING)
        risk = assess_risk(
            request, payment, amount, policy, self._signals, workflow.now(), self._input.risk_model
        )
        self._update(risk=risk)
        self._publish(SA_RISK_SCORE.value_set(risk.score))
        self._note(
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
            await self._await_review()

        self._set_status(RefundStatus.REFUNDING)
        await self._reserve(payment, amount)
        result = await self._refund_at_psp(payment, amount, method)
        self._fx = _fx_facts(payment, result)

        if result.status is PspRefundStatus.PENDING:
            self._set_status(RefundStatus.AWAITING_CONFIRMATION)
            result = await self._await_confirmation(result)

        if result.status is PspRefundStatus.SUCCEEDED:
            await self._finish(RefundStatus.SUCCEEDED, None, "")
        else:
            raise _Stop(RefundStatus.FAILED, result.failure_code, result.failure_message)

    async def _validate(self) -> PaymentRecord:
        """A disputed payment waits for ops (refunding it could pay the customer twice), and so does
        a PSP account ops must fix."""
        for validation_round in itertools.count(1):
            check = ValidateInput(
                request=self._input.request,
                evidence=self._input.evidence,
                merchant_id=self._input.merchant_id,
                audit=self._drain_audit(),
                round=validation_round,
            )
            validation: Validation = await self._until_done(
                functools.partial(
                    self._activity,
                    Activity.VALIDATE,
                    check,
                    result_type=Validation,
                    start_to_close_timeout=self._psp_timeout(),
                    retry_policy=_PSP_RETRY,
                    local=True,
                )
            )
            if not self._ops_can_fix(validation.error):
                break
            assert validation.error is not None
            await self._needs_attention(validation.error, validation.message)
        if validation.payment is None:
            code = validation.error or ErrorCode.PAYMENT_NOT_FOUND
            raise _Stop(RefundStatus.FAILED, code, validation.message)
        self._signals = validation.signals
        return validation.payment

    def _ops_can_fix(self, error: ErrorCode | None) -> bool:
        """A dispute ops may release; a PSP key ops may rotate. Both are retried, never failed."""
        if error is ErrorCode.PAYMENT_DISPUTED:
            return True
        return error is ErrorCode.PSP_AUTH_FAILED and self._edge_paths

    def _method_for(self, payment: PaymentRecord, amount: Money) -> RefundMethod:
        """An uncaptured authorisation is cancelled, never refunded; it cannot be cancelled in part."""
        if payment.state is PaymentState.CAPTURED:
            return RefundMethod.REFUND
        if payment.state is PaymentState.AUTHORIZED and amount.value == payment.amount_authorized:
            return RefundMethod.VOID
        raise _Stop(
            RefundStatus.FAILED,
            ErrorCode.PAYMENT_NOT_REFUNDABLE,
            f"payment is {payment.state.value}; only a full void of an authorisation is possible",
        )

    async def _await_review(self) -> None:
        """Wait for the reviewers; past the policy's deadlines, escalate, then let the policy decide."""
        self._set_status(RefundStatus.AWAITING_REVIEW)
        self._update(awaiting_review_since=workflow.now())
        self._publish(SA_REVIEW_SINCE.value_set(workflow.now()))
        policy = self._input.policy
        decided = lambda: self._state.review is not None  # noqa: E731
        if workflow.patched(REVIEW_DEADLINES):
            escalate_after = timedelta(seconds=policy.review_escalate_after_seconds)
            decide_after = timedelta(seconds=policy.review_decide_after_seconds)
            try:
                await self._wait(decided, timeout=escalate_after)
            except TimeoutError:
                await self._escalate_review(escalate_after)
                try:
                    await self._wait(decided, timeout=decide_after - escalate_after)
                except TimeoutError:
                    self._decide_by_policy()
        else:
            await self._wait(decided)
        review = self._state.review
        assert review is not None
        features = self._state.risk.features if self._state.risk else {}
        self._note(
            "review_decided",
            actor=review.reviewer if ":" in review.reviewer else f"reviewer:{review.reviewer}",
            reason_code="approved" if review.approved else "rejected",
            detail={
                "reason": review.reason,
                "approvers": ",".join(a.reviewer for a in self._state.approvals),
                "policy_version": policy.version,
                **{f"feature:{name}": value for name, value in features.items()},
            },
        )
        if not review.approved:
            code = (
                ErrorCode.REVIEW_TIMEOUT
                if review.reviewer.startswith("policy:")
                else ErrorCode.REVIEW_REJECTED
            )
            raise _Stop(RefundStatus.REJECTED, code, review.reason)

    async def _escalate_review(self, waited: timedelta) -> None:
        self._update(review_escalated=True)
        self._publish(SA_ESCALATED.value_set(True))
        hours = int(waited.total_seconds()) // 3600
        self._note("review_escalated", reason_code="review_deadline", detail={"waited_hours": str(hours)})
        notice = NotifyInput(
            request_id=self._state.request_id,
            payment_reference=self._state.payment_reference,
            event="review_escalated",
            message=f"refund {self._state.request_id} has waited {hours} hours for review",
            detail={
                "amount": str(self._state.amount or ""),
                "risk": str(self._state.risk.score if self._state.risk else ""),
            },
        )
        if self._edge_paths:
            # the audit stays with the money path; the notice goes out beside it, never in its way
            self._background.append(asyncio.create_task(self._notify(notice)))
            return
        await self._activity(
            Activity.NOTIFY,
            notice.model_copy(update={"audit": self._drain_audit()}),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_attempts=5),
        )

    async def _notify(self, notice: NotifyInput) -> None:
        """Tell ops; a hook that keeps failing is audited and the refund goes on."""
        try:
            await self._activity(
                Activity.NOTIFY,
                notice,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(maximum_attempts=5),
            )
        except ActivityError as err:
            self._note(
                "ops_notification_failed",
                reason_code=notice.event,
                detail={"error": _failure_of(err)[1][:500]},
            )

    def _decide_by_policy(self) -> None:
        policy = self._input.policy
        approved = policy.on_review_deadline == "approve"
        self._update(
            review=ReviewDecision(
                approved=approved,
                reviewer=f"policy:{policy.version}",
                reason=f"no decision within {policy.review_decide_after_seconds // 3600} hours",
                decided_at=workflow.now(),
            )
        )

    async def _reserve(self, payment: PaymentRecord, amount: Money) -> None:
        hold = ReserveInput(
            request_id=self._state.request_id,
            merchant_id=self._input.merchant_id,
            payment=payment,
            amount=amount,
            allocation=self._state.allocation,
            audit=self._drain_audit(),
        )
        reservation = await self._db_step(Activity.RESERVE, hold, Reservation)
        if not reservation.granted:
            raise _Stop(
                RefundStatus.FAILED,
                reservation.refusal or ErrorCode.REFUND_EXCEEDS_CAPTURE,
                f"{Money(value=reservation.available, currency=amount.currency)} left to refund",
            )

    async def _refund_at_psp(
        self, payment: PaymentRecord, amount: Money, method: RefundMethod
    ) -> RefundResult:
        """Exactly once at the PSP: one key per generation, a new one only after a search."""
        search_first = False  # after ops retry a call whose outcome is unknown, look before acting
        while True:
            call = PspRefundCall(
                request_id=self._state.request_id,
                payment=payment,
                amount=amount,
                reason_code=self._input.request.reason_code,
                key_generation=self._state.key_generation,
                method=method,
                merchant_id=self._input.merchant_id,
                search_first=search_first,
            )
            try:
                result: RefundResult = await self._activity(
                    Activity.REFUND,
                    call,
                    result_type=RefundResult,
                    start_to_close_timeout=self._psp_timeout(),
                    retry_policy=_PSP_RETRY,
                )
            except ActivityError as err:
                cause = err.cause
                if not self._edge_paths:
                    if not isinstance(cause, ApplicationError):
                        raise
                    if cause.type != ErrorCode.PSP_KEY_POISONED:
                        raise _Stop(RefundStatus.FAILED, _code(cause.type), cause.message) from err
                    await self._next_key_generation(cause.message)
                    continue
                code, message = _failure_of(err)
                if code is ErrorCode.PSP_KEY_POISONED:
                    await self._next_key_generation(message)
                elif code in _REFUSALS:
                    raise _Stop(RefundStatus.FAILED, code, message) from err
                else:
                    await self._needs_attention(code, message)
                    search_first = True
                continue
            self._update(psp_refund_id=result.psp_refund_id)
            return result

    async def _next_key_generation(self, why: str) -> None:
        """The old key replays a failure forever; the activity searched the PSP before giving up."""
        if self._state.key_generation >= self._input.policy.max_key_generations:
            await self._needs_attention(ErrorCode.PSP_KEY_EXHAUSTED, why)
        self._update(key_generation=self._state.key_generation + 1)
        self._note(
            "idempotency_key_rotated",
            reason_code=ErrorCode.PSP_KEY_POISONED.value,
            detail={"generation": str(self._state.key_generation), "why": why},
        )

    async def _await_confirmation(self, first: RefundResult) -> RefundResult:
        """Wait for the PSP's webhook; poll with backoff when it is late; escalate at the deadline."""
        assert first.psp_refund_id is not None
        psp_refund_id = first.psp_refund_id
        policy = self._input.policy
        deadline = workflow.now() + timedelta(seconds=policy.confirmation_deadline_seconds)
        interval = timedelta(seconds=policy.confirmation_poll_seconds)
        confirmed = lambda: self._final_update(psp_refund_id) is not None  # noqa: E731
        while (update := self._final_update(psp_refund_id)) is None:
            remaining = deadline - workflow.now()
            if remaining <= timedelta(0):
                await self._needs_attention(
                    ErrorCode.CONFIRMATION_TIMEOUT,
                    "PSP never confirmed",
                    resolved=confirmed if self._edge_paths else None,
                )
                deadline = workflow.now() + timedelta(seconds=policy.confirmation_deadline_seconds)
                continue
            try:
                await self._wait(
                    lambda: self._final_update(psp_refund_id) is not None,
                    timeout=min(interval, remaining),
                )
            except TimeoutError:
                try:
                    polled: PspRefundUpdate = await self._activity(
                        Activity.CHECK_REFUND,
                        RefundLookup(
                            provider=self._state.provider,
                            psp_refund_id=psp_refund_id,
                            request_id=self._state.request_id,
                            merchant_id=self._input.merchant_id,
                        ),
                        result_type=PspRefundUpdate,
                        start_to_close_timeout=self._psp_timeout(),
                        retry_policy=_PSP_RETRY,
                    )
                except ActivityError as err:
                    if not self._edge_paths:
                        raise
                    # the PSP's own webhook may still settle it while ops look
                    await self._needs_attention(*_failure_of(err), resolved=confirmed)
                    continue
                self._record_update(polled)
                interval = min(interval * 2, _MAX_POLL_INTERVAL)
        self._note(
            "psp_confirmed",
            actor=f"psp:{self._state.provider.value}",
            reason_code=update.status.value,
            detail={"psp_event_id": update.psp_event_id or "poll"},
        )
        return first.model_copy(
            update={
                "status": update.status,
                "failure_code": update.failure_code,
                "failure_message": update.failure_message,
            }
        )

    async def _needs_attention(
        self, code: ErrorCode, message: str, resolved: Callable[[], bool] | None = None
    ) -> None:
        """Hand the refund to ops and wait until an operator asks to try again, or until `resolved`
        (the PSP's own final word) makes the question moot. Steps waiting at once (the refund and
        a restock) share one `needs_attention` and one retry."""
        if self._attention_waiters == 0:
            self._status_before_attention = self._state.status
        self._attention_waiters += 1
        self._update(failure_code=code, failure_message=message)
        self._set_status(RefundStatus.NEEDS_ATTENTION)
        retries = self._retries
        await self._wait(lambda: self._retries > retries or (resolved is not None and resolved()))
        self._attention_waiters -= 1
        if self._retries > retries:
            self._note("ops_retry", actor=f"operator:{self._retry_requested_by}", reason_code=code.value)
        else:
            psp = f"psp:{self._state.provider.value}"
            self._note("attention_resolved", actor=psp, reason_code=code.value)
        if self._attention_waiters == 0 and self._state.status is RefundStatus.NEEDS_ATTENTION:
            self._update(failure_code=None, failure_message="")
            self._set_status(self._status_before_attention)

    async def _db_step(self, name: str, argument: object, result_type: type[T]) -> T:
        """A short, idempotent database step: a local activity, retried, never failing the refund."""
        result: T = await self._until_done(
            lambda: self._activity(
                name,
                argument,
                result_type=result_type,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=_DB_RETRY,
                local=True,
            )
        )
        return result

    async def _until_done(self, step: Callable[[], Awaitable[T]]) -> T:
        """Run a step; when it fails for good, ops see why in `needs_attention` and their `retry`
        runs it again. A refund workflow never ends `Failed` with its money unaccounted for."""
        while True:
            try:
                return await step()
            except ActivityError as err:
                if not self._edge_paths:
                    raise
                await self._needs_attention(*_failure_of(err))

    # ---- returned goods ---------------------------------------------------------------------------

    async def _collect_returns(self) -> None:
        """Restock each receipt's sellable units until every unit is back or the deadline passes."""
        deadline = workflow.now() + timedelta(seconds=self._input.policy.returns_deadline_seconds)
        while True:
            while self._receipts:
                await self._restock(self._receipts.pop(0))
            if self._state.returns.status is not ReturnsStatus.AWAITING_GOODS:
                return
            try:
                await self._wait(lambda: bool(self._receipts), timeout=deadline - workflow.now())
            except TimeoutError:
                self._update(
                    returns=self._state.returns.model_copy(update={"status": ReturnsStatus.NOT_RECEIVED})
                )
                self._note("returns_not_received", reason_code="deadline")
                await self._restock(None)  # writes the note
                return

    async def _restock(self, receipt: GoodsReceipt | None) -> None:
        restock = RestockInput(
            request_id=self._state.request_id,
            merchant_id=self._input.merchant_id,
            payment_reference=self._state.payment_reference,
            receipt=receipt,
            audit=self._drain_audit(),
        )
        result = await self._db_step(Activity.RESTOCK, restock, RestockResult)
        receipt_id = receipt.receipt_id if receipt is not None else None
        self._update(returns=with_restock(self._state.returns, receipt_id, result.restocked))

    # ---- compensation and the terminal step ---------------------------------------------------

    async def _finish(self, status: RefundStatus, code: ErrorCode | None, message: str) -> None:
        """Commit or release the reservation, post the ledger, write the audit: one activity.

        The final status is shown only once the books are written, so `succeeded` means posted.
        """
        self._note("status_changed", status_before=self._state.status, status_after=status)
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
            audit=self._drain_audit(),
            request_digest=self._input.request.digest_for(self._input.merchant_id),
        )
        await self._until_done(
            lambda: self._activity(
                Activity.FINISH,
                books,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=_DB_RETRY,
                local=True,
            )
        )
        self._update(failure_code=code, failure_message=message)
        self._set_status(status, audited=False)
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

    def _late_failure(self) -> PspRefundUpdate | None:
        """The PSP's failure of a refund this workflow booked as succeeded, not yet reversed."""
        psp_refund_id = self._state.psp_refund_id
        if self._reversed or self._state.status is not RefundStatus.SUCCEEDED or psp_refund_id is None:
            return None
        for update in (self._late_failures.get(psp_refund_id), self._psp_updates.get(psp_refund_id)):
            if update is not None and update.status is PspRefundStatus.FAILED:
                return update
        return None

    async def _reverse(self, update: PspRefundUpdate) -> None:
        """Reverse the posting and show the refund failed; `refunds attention` lists it for ops."""
        self._reversed = True
        if not self._edge_paths:
            # recorded before open workflows reversed late failures themselves: at least the audit
            # (written with the next step) tells ops, and `refunds attention` lists it
            self._note(
                "late_failure_not_reversed",
                actor=f"psp:{self._state.provider.value}",
                reason_code=(update.failure_code or ErrorCode.PSP_DECLINED).value,
                detail={"psp_refund_id": update.psp_refund_id},
            )
            return
        late = LateFailureInput(
            provider=self._state.provider,
            request_id=self._state.request_id,
            update=update,
            merchant_id=self._input.merchant_id,
            audit=self._drain_audit(),
        )
        await self._db_step(Activity.REVERSE, late, bool)
        self._update(
            failure_code=update.failure_code or ErrorCode.PSP_DECLINED, failure_message=update.failure_message
        )
        self._set_status(RefundStatus.FAILED, audited=False)  # the reversal's own audit row says so
        self._publish_now()

    # ---- messages from ops and PSPs -----------------------------------------------------------

    @workflow.query
    def state(self) -> RefundState:
        return self._state

    @workflow.update
    def approve(self, review: ReviewInput) -> RefundState:
        self._decide(review, approved=True)
        return self._state

    @approve.validator
    def _validate_approve(self, review: ReviewInput) -> None:
        self._check_approver(review)
        self._check_proof(review, "approve")

    @workflow.update
    def reject(self, review: ReviewInput) -> RefundState:
        self._decide(review, approved=False)
        return self._state

    @reject.validator
    def _validate_reject(self, review: ReviewInput) -> None:
        self._check_rejecter(review)
        self._check_proof(review, "reject")

    @workflow.update
    def retry(self, request: RetryInput) -> RefundState:
        self._retry_requested_by = request.operator
        self._retries += 1
        return self._state

    @retry.validator
    def _validate_retry(self, request: RetryInput) -> None:
        if self._state.status is not RefundStatus.NEEDS_ATTENTION and not self._attention_waiters:
            raise ApplicationError(
                f"refund is {self._state.status.value}, not needs_attention",
                type=ErrorCode.INVALID_STATE,
            )

    @workflow.update
    def goods_received(self, receipt: GoodsReceipt) -> ReturnsState:
        """The warehouse has the goods; a repeated receipt id changes nothing."""
        if receipt.receipt_id not in self._state.returns.receipts:
            self._update(returns=with_receipt(self._state.returns, receipt))
            self._receipts.append(receipt)
        return self._state.returns

    @goods_received.validator
    def _validate_goods_received(self, receipt: GoodsReceipt) -> None:
        if receipt.request_id is not None and receipt.request_id != self._state.request_id:
            raise ApplicationError(
                f"the receipt is for refund {receipt.request_id}", type=ErrorCode.INVALID_REQUEST
            )
        problem = receipt_problem(self._state.returns, receipt)
        if problem is not None:
            raise ApplicationError(problem, type=ErrorCode.INVALID_REQUEST)

    @workflow.signal
    def approve_from_ui(self, review: ReviewInput) -> None:
        """For the Temporal UI, which sends signals: the same checks; a refused one is audited."""
        self._signalled_decision(review, approved=True)

    @workflow.signal
    def reject_from_ui(self, review: ReviewInput) -> None:
        self._signalled_decision(review, approved=False)

    def _signalled_decision(self, review: ReviewInput, *, approved: bool) -> None:
        """A decision carrying the service's proof counts as its reviewer's; one without counts as
        `ui:<name>` only where the policy allows it, and never towards four eyes."""
        proven = self._is_proven(review, "approve" if approved else "reject")
        if not proven:
            review = review.model_copy(update={"reviewer": f"{identity.UI_PREFIX}{review.reviewer}"})
        try:
            if self._input.review_keys and not proven:
                self._check_unverified(review, approved)
            if approved:
                self._check_approver(review)
            else:
                self._check_rejecter(review)
        except ApplicationError as err:
            self._note(
                "review_signal_refused", actor=f"reviewer:{review.reviewer}", reason_code=str(err.type)
            )
            return
        self._decide(review, approved=approved)

    @workflow.signal
    def psp_refund_update(self, update: PspRefundUpdate) -> None:
        self._record_update(update)

    # ---- Temporal plumbing: one search-attribute upsert per workflow task ---------------------

    async def _activity(
        self,
        name: str,
        argument: Any,
        *,
        result_type: type[Any] | None = None,
        start_to_close_timeout: timedelta,
        retry_policy: RetryPolicy,
        local: bool = False,
    ) -> Any:
        """Run an activity after publishing search attributes. Short steps (the database, the
        payment lookup) run as local activities: no round trip through the server."""
        self._publish_now()
        if local:
            return await workflow.execute_local_activity(
                name,
                argument,
                result_type=result_type,
                start_to_close_timeout=start_to_close_timeout,
                retry_policy=retry_policy,
            )
        return await workflow.execute_activity(
            name,
            argument,
            result_type=result_type,
            start_to_close_timeout=start_to_close_timeout,
            retry_policy=retry_policy,
            task_queue=self._queue_for(name),
        )

    def _queue_for(self, name: str) -> str | None:
        """PSP calls go to the PSP's own task queue, whose rate limit keeps a burst of refunds under
        the PSP account's limit; everything else stays on the workflow's queue."""
        if name not in (Activity.REFUND, Activity.CHECK_REFUND) or not workflow.patched(PSP_TASK_QUEUES):
            return None
        return psp_task_queue(workflow.info().task_queue, self._state.provider.value, self._input.merchant_id)

    async def _wait(self, condition: Callable[[], bool], timeout: timedelta | None = None) -> None:
        self._publish_now()
        await workflow.wait_condition(condition, timeout=timeout)

    def _publish(self, *updates: SearchAttributeUpdate[Any]) -> None:
        """Queue search attributes; they are upserted together before the workflow next waits."""
        for update in updates:
            self._attributes[update.key.name] = update

    def _publish_now(self) -> None:
        if self._attributes:
            workflow.upsert_search_attributes(list(self._attributes.values()))
            self._attributes = {}

    # ---- small helpers ------------------------------------------------------------------------

    def _check_reviewable(self, review: ReviewInput) -> None:
        if self._state.status is not RefundStatus.AWAITING_REVIEW or self._state.review is not None:
            raise ApplicationError(
                f"refund is {self._state.status.value}, not awaiting_review",
                type=ErrorCode.INVALID_STATE,
            )
        if not review.reviewer.strip():
            raise ApplicationError("a reviewer identity is required", type=ErrorCode.UNAUTHORIZED)

    def _check_approver(self, review: ReviewInput) -> None:
        """Nobody approves a refund they requested, nor approves twice (four eyes means two people)."""
        self._check_reviewable(review)
        requested_by = (self._input.request.metadata or {}).get("requested_by")
        if requested_by and self._same_person(requested_by, review.reviewer):
            raise ApplicationError(f"{review.reviewer} requested this refund", type=ErrorCode.UNAUTHORIZED)
        if any(self._same_person(a.reviewer, review.reviewer) for a in self._state.approvals):
            raise ApplicationError(
                f"{review.reviewer} already approved; a second reviewer must", type=ErrorCode.INVALID_STATE
            )

    def _same_person(self, a: str, b: str) -> bool:
        """People, not strings; a refund started before decisions were signed keeps the exact
        comparison it started under, so its recorded UI signals replay as they ran."""
        if self._input.review_keys:
            return identity.same_person(a, b)
        return a.removeprefix(identity.UI_PREFIX) == b.removeprefix(identity.UI_PREFIX)

    def _check_rejecter(self, review: ReviewInput) -> None:
        self._check_reviewable(review)
        if not review.reason.strip():
            raise ApplicationError("a rejection needs a reason", type=ErrorCode.INVALID_REQUEST)

    def _is_proven(self, review: ReviewInput, verdict: str) -> bool:
        return identity.proven(
            self._input.review_keys,
            review.proof,
            workflow.info().workflow_id,
            verdict,
            review.reviewer,
            review.reason,
        )

    def _check_proof(self, review: ReviewInput, verdict: str) -> None:
        """An Update's reviewer counts only with the service's proof (refunds started before
        decisions were signed have no keys and keep the rule they started under)."""
        if self._input.review_keys and not self._is_proven(review, verdict):
            raise ApplicationError(
                "a decision needs a reviewer token and a key this refund knows: decide through the service "
                "(HTTP or `refunds approve`), which still holds the signing key the refund started with",
                type=ErrorCode.UNAUTHORIZED,
            )

    def _check_unverified(self, review: ReviewInput, approved: bool) -> None:
        """A name typed into the Temporal UI proves nothing. Where allowed, it decides a review that
        one person may decide alone; it never counts towards four eyes, where each approver must be
        a proven, different person."""
        if not self._input.policy.unverified_ui_reviews:
            raise ApplicationError("an unverified Temporal UI decision", type=ErrorCode.UNAUTHORIZED)
        if not identity.UI_NAME.match(review.reviewer.removeprefix(identity.UI_PREFIX)):
            raise ApplicationError(
                "a Temporal UI name is letters, digits, . _ -", type=ErrorCode.UNAUTHORIZED
            )
        needed = self._state.risk.approvals_needed if self._state.risk else 1
        if approved and needed > 1:
            raise ApplicationError("four eyes need reviewer tokens", type=ErrorCode.UNAUTHORIZED)

    def _decide(self, review: ReviewInput, approved: bool) -> None:
        """A rejection decides at once; an approval once enough different reviewers approved."""
        decision = ReviewDecision(
            approved=approved, reviewer=review.reviewer, reason=review.reason, decided_at=workflow.now()
        )
        if not approved:
            self._update(review=decision)
            return
        approvals = [*self._state.approvals, decision]
        needed = self._state.risk.approvals_needed if self._state.risk else 1
        self._update(approvals=approvals)
        if len(approvals) >= needed:
            self._update(review=decision)
        else:
            self._note("review_approved_once", actor=f"reviewer:{review.reviewer}", reason_code="four_eyes")

    def _record_update(self, update: PspRefundUpdate) -> None:
        """Keep the first final word per PSP refund; duplicates and late `pending` change nothing, a
        failure after success is kept apart and reversed."""
        known = self._psp_updates.get(update.psp_refund_id)
        if known is None or known.status is PspRefundStatus.PENDING:
            self._psp_updates[update.psp_refund_id] = update
        elif known.status is PspRefundStatus.SUCCEEDED and update.status is PspRefundStatus.FAILED:
            self._late_failures.setdefault(update.psp_refund_id, update)  # reversed, not dropped

    def _final_update(self, psp_refund_id: str) -> PspRefundUpdate | None:
        update = self._psp_updates.get(psp_refund_id)
        if update is None or update.status is PspRefundStatus.PENDING:
            return None
        return update

    def _set_status(self, status: RefundStatus, *, audited: bool = True) -> None:
        if status is self._state.status:
            return
        before = self._state.status
        self._update(status=status)
        self._publish(SA_STATUS.value_set(status.value))
        if audited:
            self._note("status_changed", status_before=before, status_after=status)

    def _update(self, **changes: object) -> None:
        self._state = self._state.model_copy(update=changes)

    def _note(
        self,
        step: str,
        *,
        actor: str = "system",
        reason_code: str | None = None,
        status_before: RefundStatus | None = None,
        status_after: RefundStatus | None = None,
        detail: dict[str, str] | None = None,
    ) -> None:
        """Buffer an audit row for a step taken in workflow code; the next activity writes it."""
        self._audit_seq += 1
        self._audit.append(
            AuditEvent(
                key=f"wf:{self._audit_seq}",
                step=step,
                actor=actor,
                reason_code=reason_code,
                status_before=status_before,
                status_after=status_after,
                detail=detail or {},
                at=workflow.now(),
            )
        )

    def _drain_audit(self) -> list[AuditEvent]:
        drained, self._audit = self._audit, []
        return drained

    def _psp_timeout(self) -> timedelta:
        return timedelta(seconds=self._input.policy.psp_call_timeout_seconds)


def _failure_of(err: ActivityError) -> tuple[ErrorCode, str]:
    """The code and message ops see for a step that failed for good."""
    cause = err.cause
    if isinstance(cause, ApplicationError):
        try:
            return ErrorCode(cause.type or ""), cause.message
        except ValueError:
            return ErrorCode.STEP_FAILED, f"{err.activity_type}: {cause.message}"
    return ErrorCode.STEP_FAILED, f"{err.activity_type}: {cause or err}"


def _code(error_type: str | None) -> ErrorCode:
    try:
        return ErrorCode(error_type or "")
    except ValueError:
        return ErrorCode.PSP_DECLINED
