"""ExternalRefundWorkflow: a refund someone made in the PSP's dashboard is adopted into our books.

Started with signal-with-start by the webhook route, one per PSP refund, so every update about the
same refund lands on the same run; once the PSP says it succeeded, it is posted and audited once.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from domain.contracts import ExternalRefundInput, PspRefundUpdate
    from domain.naming import Activity
    from domain.status import PspRefundStatus

# Dashboard refunds settle within days; after this the run ends and a later event starts a new one.
_WATCH = timedelta(days=30)


@workflow.defn(name="ExternalRefundWorkflow")
class ExternalRefundWorkflow:
    def __init__(self) -> None:
        self._final: PspRefundUpdate | None = None

    @workflow.run
    async def run(self, input: ExternalRefundInput) -> bool:
        """True when the refund was booked; False when the PSP failed it or never settled it."""
        try:
            await workflow.wait_condition(lambda: self._final is not None, timeout=_WATCH)
        except TimeoutError:
            return False
        final = self._final
        if final is None or final.status is not PspRefundStatus.SUCCEEDED:
            return False
        booked: bool = await workflow.execute_activity(
            Activity.RECORD_EXTERNAL,
            input.model_copy(update={"outcome": final}),
            result_type=bool,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=30)),
            summary=f"{input.provider.value} {input.payment_reference}",
        )
        return booked

    @workflow.signal
    def psp_refund_update(self, update: PspRefundUpdate) -> None:
        if self._final is None and update.status is not PspRefundStatus.PENDING:
            self._final = update
