"""LateRefundFailureWorkflow: a refund that failed after it succeeded is reversed in the books.

Started by the webhook route when the refund's own workflow has already ended; its id collapses
duplicate deliveries of the same failure onto one run. Anyone with Temporal access could start one,
so the failure must carry the service's proof and is read back at the PSP (where it can be) first.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from domain.contracts import LateFailureInput, OutcomeCheck, OutcomeVerdict
    from domain.naming import Activity
    from domain.status import PspRefundStatus

from workflows.refund.patches import OUTCOME_PROOFS

_DB_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30))
_PSP_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=5))


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
            verdict: OutcomeVerdict = await workflow.execute_activity(
                Activity.CONFIRM_OUTCOME,
                check,
                result_type=OutcomeVerdict,
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=_PSP_RETRY,
            )
            if verdict.update is None or verdict.update.status is not PspRefundStatus.FAILED:
                return False  # unproven or the PSP says otherwise: audited by the activity
            input = input.model_copy(update={"update": verdict.update})
        reversed_: bool = await workflow.execute_activity(
            Activity.REVERSE,
            input,
            result_type=bool,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=_DB_RETRY,
        )
        return reversed_
