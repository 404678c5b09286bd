"""LateRefundFailureWorkflow: a refund that failed after it succeeded is reversed in the books.

Started by the webhook route when the refund's own workflow has already ended; its id collapses
duplicate deliveries of the same failure onto one run. Anyone with Temporal access could start one,
so the failure must carry the service's proof and is read back at the PSP (where it can be) first.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain.contracts import LateFailureInput, OutcomeCheck
    from domain.status import PspRefundStatus

from workflows.outcome_steps import confirm_outcome, reverse
from workflows.refund.patches import OUTCOME_PROOFS


@workflow.defn(name="LateRefundFailureWorkflow")
class LateRefundFailureWorkflow:
    @workflow.run
    async def run(self, input: LateFailureInput) -> bool:
        """True when a posting was reversed; False when there was nothing to reverse (or no proof)."""
        if workflow.patched(OUTCOME_PROOFS):
            check = OutcomeCheck(
                provider=input.provider,
                update=input.update,
                request_id=input.request_id,
                merchant_id=input.merchant_id,
            )
            verdict = await confirm_outcome(check)
            if verdict.update is None or verdict.update.status is not PspRefundStatus.FAILED:
                return False  # unproven, or the PSP says otherwise: the activity wrote it down
            input = input.model_copy(update={"update": verdict.update})
        return await reverse(input)
