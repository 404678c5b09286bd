"""A changed RefundWorkflow, as the next release would ship it: a new step right after validation.

Guarded by `workflow.patched`, refunds that validated on the previous release skip it, on replay and
after; new refunds take it. The unguarded variant is what a careless release would ship. Both live in
a module of their own so Temporal's workflow sandbox can import them.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain.contracts import PaymentRecord, RefundState, RefundWorkflowInput
    from workflows.refund import RefundWorkflow


@workflow.defn(name="RefundWorkflow")
class NextReleaseRefundWorkflow(RefundWorkflow):
    @workflow.run
    async def run(self, input: RefundWorkflowInput) -> RefundState:
        return await super().run(input)

    async def _validate(self) -> PaymentRecord:
        payment = await super()._validate()
        if workflow.patched("next-release-check"):
            await workflow.sleep(timedelta(milliseconds=1))  # a new command in the history
            self._record.note("next_release_check", reason_code="deployed")
        return payment


@workflow.defn(name="RefundWorkflow")
class CarelessReleaseRefundWorkflow(RefundWorkflow):
    @workflow.run
    async def run(self, input: RefundWorkflowInput) -> RefundState:
        return await super().run(input)

    async def _validate(self) -> PaymentRecord:
        payment = await super()._validate()
        await workflow.sleep(timedelta(milliseconds=1))
        return payment
