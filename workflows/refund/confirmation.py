"""The refund at the PSP: made exactly once (one idempotency key per generation), confirmed by the
PSP's webhook or by polling, and reversed when the PSP fails it after it succeeded."""

from __future__ import annotations

import functools
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain.actors import Actor
    from domain.contracts import (
        LateFailureInput,
        OutcomeCheck,
        PaymentRecord,
        PspRefundCall,
        PspRefundUpdate,
        RefundLookup,
        RefundResult,
        RefundWorkflowInput,
    )
    from domain.money import Money
    from domain.naming import workflow_id
    from domain.outcome_proofs import outcome_proven, subject
    from domain.status import ErrorCode, PspRefundStatus, RefundMethod, RefundStatus

from workflows.refund.attention import Attention, Stop, failure_of
from workflows.refund.patches import Patches
from workflows.refund.record import RefundRecord
from workflows.refund.steps import Steps

MAX_POLL_INTERVAL = timedelta(hours=1)
MAX_AUDITED_UNPROVEN = 10  # refused signals written to the trail one by one; the rest are counted

# The PSP's own word that it made no refund: the refund fails and its reservation is released.
# Every other error leaves it unknown whether money moved, so ops decide (`needs_attention`).
REFUSALS = frozenset(
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


def _code(error_type: str | None) -> ErrorCode:
    try:
        return ErrorCode(error_type or "")
    except ValueError:
        return ErrorCode.PSP_DECLINED


class Confirmation:
    def __init__(
        self,
        input: RefundWorkflowInput,
        record: RefundRecord,
        steps: Steps,
        attention: Attention,
        patches: Patches,
    ) -> None:
        self._input = input
        self._record = record
        self._steps = steps
        self._attention = attention
        self._patches = patches
        self._psp = Actor.psp(input.request.provider.value)
        self._updates: dict[str, PspRefundUpdate] = {}
        self._late_failures: dict[str, PspRefundUpdate] = {}  # failed after the PSP said succeeded
        self._reversed = False
        self._read_back: set[str] = set()  # PSP refunds whose final word the PSP itself gave us
        self.unproven: list[PspRefundUpdate] = []  # refused signals not yet in the trail
        self._unproven_seen = 0
        self._checking = False  # `check_refused` is asking about one of them

    # ---- the refund itself --------------------------------------------------------------------

    async def refund(self, payment: PaymentRecord, amount: Money, method: RefundMethod) -> RefundResult:
        """Exactly once at the PSP: one key per generation, a new one only after a search."""
        search_first = False  # after ops retry a call whose outcome is unknown, look before acting
        while True:
            call = PspRefundCall(
                request_id=self._record.state.request_id,
                payment=payment,
                amount=amount,
                reason_code=self._input.request.reason_code,
                key_generation=self._record.state.key_generation,
                method=method,
                merchant_id=self._input.merchant_id,
                search_first=search_first,
            )
            try:
                result = await self._steps.refund(call)
            except ActivityError as err:
                if not self._patches.edge_paths:
                    await self._before_edge_paths(err)
                    continue
                code, message = failure_of(err)
                if code is ErrorCode.PSP_KEY_POISONED:
                    await self._next_key_generation(message)
                elif code in REFUSALS:
                    raise Stop(RefundStatus.FAILED, code, message) from err
                else:
                    await self._attention.wait_for_ops(code, message)
                    search_first = True
                continue
            self._record.update(psp_refund_id=result.psp_refund_id)
            return result

    async def _before_edge_paths(self, err: ActivityError) -> None:
        """Refunds started before EDGE_PATHS: any PSP error but a poisoned key fails the refund."""
        cause = err.cause
        if not isinstance(cause, ApplicationError):
            raise err
        if cause.type != ErrorCode.PSP_KEY_POISONED:
            raise Stop(RefundStatus.FAILED, _code(cause.type), cause.message) from err
        await self._next_key_generation(cause.message)

    async def _next_key_generation(self, why: str) -> None:
        """The old key replays a failure forever; the activity searched the PSP before giving up."""
        record = self._record
        if record.state.key_generation >= self._input.policy.max_key_generations:
            await self._attention.wait_for_ops(ErrorCode.PSP_KEY_EXHAUSTED, why)
        record.update(key_generation=record.state.key_generation + 1)
        record.note(
            "idempotency_key_rotated",
            reason_code=ErrorCode.PSP_KEY_POISONED.value,
            detail={"generation": str(record.state.key_generation), "why": why},
        )

    # ---- the PSP's final word -----------------------------------------------------------------

    async def confirmed(self, first: RefundResult) -> RefundResult:
        """Wait for the PSP's webhook; poll with backoff when it is late; go to ops at the deadline."""
        assert first.psp_refund_id is not None
        psp_refund_id = first.psp_refund_id
        policy = self._input.policy
        deadline = workflow.now() + timedelta(seconds=policy.confirmation_deadline_seconds)
        interval = timedelta(seconds=policy.confirmation_poll_seconds)
        confirmed = lambda: self._final_update(psp_refund_id) is not None  # noqa: E731
        while (update := await self._read_back_final(psp_refund_id)) is None:
            remaining = deadline - workflow.now()
            if remaining <= timedelta(0):
                await self._attention.wait_for_ops(
                    ErrorCode.CONFIRMATION_TIMEOUT,
                    "PSP never confirmed",
                    resolved=confirmed if self._patches.edge_paths else None,
                )
                deadline = workflow.now() + timedelta(seconds=policy.confirmation_deadline_seconds)
                continue
            try:
                await self._record.wait(confirmed, timeout=min(interval, remaining))
            except TimeoutError:
                try:
                    polled = await self._steps.check_refund(self._lookup(psp_refund_id))
                except ActivityError as err:
                    if not self._patches.edge_paths:
                        raise
                    # the PSP's own webhook may still settle it while ops look
                    await self._attention.wait_for_ops(*failure_of(err), resolved=confirmed)
                    continue
                self.record(polled, from_psp=True)
                interval = min(interval * 2, MAX_POLL_INTERVAL)
        self._record.note(
            "psp_confirmed",
            actor=self._psp,
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

    async def _read_back_final(self, psp_refund_id: str) -> PspRefundUpdate | None:
        """The final word, once the PSP itself gave it: an event's word is read back at the PSP
        first (where the PSP can be read), and a PSP that still says pending keeps the refund waiting."""
        update = self._final_update(psp_refund_id)
        if update is None or psp_refund_id in self._read_back or not self._patches.outcome_proofs:
            return update
        check = self._check(update)
        verdict = await self._attention.until_done(lambda: self._steps.confirm_outcome(check))
        final = verdict.update
        if final is None or final.status is PspRefundStatus.PENDING:
            del self._updates[psp_refund_id]  # the poll, or the PSP's next event, will tell
            return None
        if verdict.read_back:
            self._read_back.add(psp_refund_id)
        self._updates[psp_refund_id] = final
        return final

    def _check(self, update: PspRefundUpdate) -> OutcomeCheck:
        state = self._record.state
        return OutcomeCheck(
            provider=state.provider,
            update=update,
            request_id=state.request_id,
            payment_reference=state.payment_reference,
            merchant_id=self._input.merchant_id,
            verify_proof=False,  # proven in workflow code, against the keys this refund started with
        )

    def _lookup(self, psp_refund_id: str) -> RefundLookup:
        return RefundLookup(
            provider=self._record.state.provider,
            psp_refund_id=psp_refund_id,
            request_id=self._record.state.request_id,
            merchant_id=self._input.merchant_id,
        )

    def record(self, update: PspRefundUpdate, *, from_psp: bool = False) -> None:
        """Keep the first final word per PSP refund; duplicates and late `pending` change nothing, a
        failure after success is kept apart and reversed. A signalled word counts only with the
        service's proof; a polled one is the PSP's own answer."""
        if not from_psp and not self._proven(update):
            self._refuse(update)
            return
        if from_psp and update.status is not PspRefundStatus.PENDING:
            self._read_back.add(update.psp_refund_id)
        self._take(update)

    def _take(self, update: PspRefundUpdate) -> None:
        known = self._updates.get(update.psp_refund_id)
        if known is None or known.status is PspRefundStatus.PENDING:
            self._updates[update.psp_refund_id] = update
        elif known.status is PspRefundStatus.SUCCEEDED and update.status is PspRefundStatus.FAILED:
            self._late_failures.setdefault(update.psp_refund_id, update)  # reversed, not dropped

    def _proven(self, update: PspRefundUpdate) -> bool:
        """Signed by the service for this refund (refunds started before OUTCOME_PROOFS take any)."""
        if self._patches.outcome_proofs is False or not self._input.review_keys:
            return True
        request_id = self._record.state.request_id
        about = subject(self._input.merchant_id, request_id)
        # the id the service signed for, from the input: a replay elsewhere may run under another id
        addressed = workflow_id(request_id)
        return outcome_proven(self._input.review_keys, addressed, about, update)

    def _refuse(self, update: PspRefundUpdate) -> None:
        """Changes nothing here; the first few are asked about at once (`check_refused`)."""
        self._unproven_seen += 1
        if self._unproven_seen <= MAX_AUDITED_UNPROVEN:
            self.unproven.append(update)

    async def check_refused(self) -> None:
        """A word this refund's own keys cannot prove goes to `confirm_psp_outcome`, which checks it
        against every key the service published (its signing key may have been rotated since this
        refund started) and writes an unproven one to the trail (`refunds attention` lists it); a
        word proven there is taken as the service's, read back at the PSP where it can be."""
        while True:
            await workflow.wait_condition(lambda: bool(self.unproven))
            update = self.unproven.pop(0)
            check = self._check(update).model_copy(update={"verify_proof": True})
            step = functools.partial(self._steps.confirm_outcome, check)
            self._checking = True
            try:
                verdict = await self._attention.until_done(step)
            finally:
                self._checking = False
            if verdict.update is None:
                continue
            if verdict.read_back:
                self.record(verdict.update, from_psp=True)
            else:
                self._take(verdict.update)

    def refused_checked(self) -> bool:
        """Every refused word taken so far was asked about (and, unproven, written to the trail):
        the run ends only then, or a word signalled as it ends would never reach the trail."""
        return not self.unproven and not self._checking

    def _final_update(self, psp_refund_id: str) -> PspRefundUpdate | None:
        update = self._updates.get(psp_refund_id)
        if update is None or update.status is PspRefundStatus.PENDING:
            return None
        return update

    # ---- a failure after success --------------------------------------------------------------

    def late_failure(self) -> PspRefundUpdate | None:
        """The PSP's failure of a refund this workflow booked as succeeded, not yet reversed."""
        state = self._record.state
        psp_refund_id = state.psp_refund_id
        if self._reversed or state.status is not RefundStatus.SUCCEEDED or psp_refund_id is None:
            return None
        for update in (self._late_failures.get(psp_refund_id), self._updates.get(psp_refund_id)):
            if update is not None and update.status is PspRefundStatus.FAILED:
                return update
        return None

    async def reverse(self, update: PspRefundUpdate) -> None:
        """Reverse the posting and show the refund failed; `refunds attention` lists it for ops.
        The failure is read back at the PSP first: a PSP that says the refund stands keeps it."""
        if self._patches.outcome_proofs:
            check = self._check(update)
            verdict = await self._attention.until_done(lambda: self._steps.confirm_outcome(check))
            if verdict.update is None or verdict.update.status is not PspRefundStatus.FAILED:
                self._late_failures.pop(update.psp_refund_id, None)
                if (known := self._updates.get(update.psp_refund_id)) is not None and known is update:
                    del self._updates[update.psp_refund_id]
                return
            update = verdict.update
        self._reversed = True
        record = self._record
        if not self._patches.edge_paths:
            # recorded before open workflows reversed late failures themselves: at least the audit
            # (written with the next step) tells ops, and `refunds attention` lists it
            record.note(
                "late_failure_not_reversed",
                actor=self._psp,
                reason_code=(update.failure_code or ErrorCode.PSP_DECLINED).value,
                detail={"psp_refund_id": update.psp_refund_id},
            )
            return
        late = LateFailureInput(
            provider=record.state.provider,
            request_id=record.state.request_id,
            update=update,
            merchant_id=self._input.merchant_id,
            audit=record.drain_audit(),
        )
        await self._attention.until_done(lambda: self._steps.reverse(late))
        failure = update.failure_code or ErrorCode.PSP_DECLINED
        record.update(failure_code=failure, failure_message=update.failure_message)
        record.set_status(RefundStatus.FAILED, audited=False)  # the reversal's own audit row says so
        record.publish_now()
