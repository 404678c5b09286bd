"""A careless edit of RefundWorkflow (first activity replaced by a timer), for the replay test.

Kept in its own small module: the workflow sandbox re-imports the module a workflow lives in.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain.contracts import RefundState, RefundWorkflowInput


@workflow.defn(name="RefundWorkflow")
class ReorderedRefundWorkflow:
    @workflow.run
    async def run(self, input: RefundWorkflowInput) -> RefundState:
        await workflow.sleep(timedelta(seconds=1))
        raise AssertionError("unreachable on replay")
