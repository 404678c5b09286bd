"""ExternalRefundWorkflow: a refund someone made in the PSP's dashboard is adopted into our books.

Started with signal-with-start by the webhook route, one per PSP refund, so every update about the
same refund lands on the same run; once the PSP says it succeeded, it is posted and audited once. A
failure after that (a later run, started by the failure's event, or this one when the failure came
while it booked) reverses it, and gives the payment's refundable amount back. Each word must carry
the service's proof and is read back at the PSP (where it can be) before it moves the books: anyone
with Temporal access could start or signal this.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain.contracts import (
        ExternalRefundInput,
        LateFailureInput,
        OutcomeCheck,
        OutcomeVerdict,
        PspRefundUpdate,
    )
    from domain.naming import Activity, external_request_id
    from domain.status import PspRefundStatus

from workflows.outcome_steps import DB_RETRY, DB_TIMEOUT, confirm_outcome, reverse
from workflows.refund.patches import OUTCOME_PROOFS

# Dashboard refunds settle within days; after this the run ends and a later event starts a new one.
_WATCH = timedelta(days=30)


@workflow.defn(name="ExternalRefundWorkflow")
class ExternalRefundWorkflow:
    def __init__(self) -> None:
        self._updates: list[PspRefundUpdate] = []

    @workflow.run
    async def run(self, input: ExternalRefundInput) -> bool:
        """True when the books changed (booked, or reversed); False otherwise."""
        proofs = workflow.patched(OUTCOME_PROOFS)
        changed = False
        while True:
            try:
                await workflow.wait_condition(lambda: self._final() is not None, timeout=_WATCH)
            except TimeoutError:
                return changed
            final = self._final()
            assert final is not None
            self._updates.remove(final)
            if not proofs:
                return await self._book(input, final) if final.status is PspRefundStatus.SUCCEEDED else False
            verdict = await self._confirm(input, final)
            word = verdict.update
            if verdict.denied and self._final() is None:
                # the reporting account's PSP holds no such refund (an account signing events of
                # refunds it never made): nothing it says later can book it, so the run ends now
                # rather than wait the watch out; a new event starts a new run
                return changed
            if word is None or word.status is PspRefundStatus.PENDING:
                continue  # unproven (audited), or not settled at the PSP: wait for its next word
            if word.status is PspRefundStatus.SUCCEEDED:
                changed = await self._book(input, word) or changed
            else:
                changed = await self._reverse(input, word) or changed
            # the PSP's final word is in the books; a word that came meanwhile (a failure right
            # after the success, say) is weighed before the run ends, or it would be dropped
            if self._final() is None:
                return changed

    def _final(self) -> PspRefundUpdate | None:
        return next((u for u in self._updates if u.status is not PspRefundStatus.PENDING), None)

    async def _confirm(self, input: ExternalRefundInput, update: PspRefundUpdate) -> OutcomeVerdict:
        check = OutcomeCheck(
            provider=input.provider,
            update=update,
            payment_reference=input.payment_reference,
            merchant_id=input.merchant_id,
        )
        return await confirm_outcome(check)

    async def _book(self, input: ExternalRefundInput, outcome: PspRefundUpdate) -> bool:
        booked: bool = await workflow.execute_activity(
            Activity.RECORD_EXTERNAL,
            input.model_copy(update={"outcome": outcome}),
            result_type=bool,
            start_to_close_timeout=DB_TIMEOUT,
            retry_policy=DB_RETRY,
            summary=f"{input.provider.value} {input.payment_reference}",
        )
        return booked

    async def _reverse(self, input: ExternalRefundInput, failure: PspRefundUpdate) -> bool:
        """A dashboard refund the PSP failed: reversed if we booked it, else nothing to do."""
        return await reverse(
            LateFailureInput(
                provider=input.provider,
                request_id=external_request_id(input.provider.value, input.psp_refund_id, input.merchant_id),
                update=failure,
                merchant_id=input.merchant_id,
                payment_reference=input.payment_reference,
            )
        )

    @workflow.signal
    def psp_refund_update(self, update: PspRefundUpdate) -> None:
        # a final word is weighed one at a time; `pending` changes nothing; a flood is cut short
        if update.status is not PspRefundStatus.PENDING and len(self._updates) < 20:
            self._updates.append(update)
