"""LateRefundFailureWorkflow: a refund that failed after it succeeded is reversed in the books.

Started by the webhook route when the refund's own workflow has already ended; its id collapses
duplicate deliveries of the same failure onto one run.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from domain.contracts import LateFailureInput
    from domain.naming import Activity


@workflow.defn(name="LateRefundFailureWorkflow")
class LateRefundFailureWorkflow:
    @workflow.run
    async def run(self, input: LateFailureInput) -> bool:
        """True when a posting was reversed; False when there was nothing to reverse."""
        reversed_: bool = await workflow.execute_activity(
            Activity.REVERSE,
            input,
            result_type=bool,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=30)),
        )
        return reversed_
