"""Every activity the refund workflow calls, typed, with how it is called: timeouts, retry policies,
local or not, and which task queue.

Activities are called by name (domain/naming.py `Activity`), so no workflow module imports I/O code.
A method here raises `ActivityError` when its step failed for good; what then happens to the refund
(needs_attention, a failed refund) is the caller's business.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from domain.contracts import (
        AuditRows,
        FinishInput,
        LateFailureInput,
        NotifyInput,
        OutcomeCheck,
        OutcomeVerdict,
        PspRefundCall,
        PspRefundUpdate,
        RefundLookup,
        RefundResult,
        RefundWorkflowInput,
        Reservation,
        ReserveInput,
        RestockInput,
        RestockResult,
        ValidateInput,
        Validation,
    )
    from domain.naming import Activity, psp_task_queue

from workflows.refund.patches import Patches

T = TypeVar("T")

# The database: short, idempotent, retried until it answers.
DB_TIMEOUT = timedelta(seconds=30)
DB_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=30))
# A PSP: backs off; its adapter marks what is not worth retrying (docs/architecture.md's table).
PSP_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
)
# The ops hook: a few tries, then the refund goes on without it.
NOTIFY_TIMEOUT = timedelta(seconds=30)
NOTIFY_RETRY = RetryPolicy(maximum_attempts=5)


class Steps:
    """The refund's activities. Each call first upserts the queued search attributes (`before_call`).
    Short steps (the database, the payment lookup) run as local activities: no round trip through the
    server. Calls to the PSP run on the PSP account's own rate-limited task queue."""

    def __init__(self, input: RefundWorkflowInput, patches: Patches, before_call: Callable[[], None]) -> None:
        self._provider = input.request.provider.value
        self._merchant_id = input.merchant_id
        self._psp_timeout = timedelta(seconds=input.policy.psp_call_timeout_seconds)
        self._patches = patches
        self._before_call = before_call

    async def validate(self, check: ValidateInput) -> Validation:
        """The merchant's signature again, and the PSP's record of the payment."""
        return await self._local(Activity.VALIDATE, check, Validation, self._psp_timeout, PSP_RETRY)

    async def record_audit(self, rows: AuditRows) -> None:
        """Write the workflow's own steps now, not with its next step (a review may last weeks)."""
        await self._local(Activity.RECORD_AUDIT, rows, type(None), DB_TIMEOUT, DB_RETRY)

    async def reserve(self, hold: ReserveInput) -> Reservation:
        return await self._local(Activity.RESERVE, hold, Reservation, DB_TIMEOUT, DB_RETRY)

    async def refund(self, call: PspRefundCall) -> RefundResult:
        return await self._at_psp(Activity.REFUND, call, RefundResult)

    async def check_refund(self, lookup: RefundLookup) -> PspRefundUpdate:
        return await self._at_psp(Activity.CHECK_REFUND, lookup, PspRefundUpdate)

    async def confirm_outcome(self, check: OutcomeCheck) -> OutcomeVerdict:
        """A PSP outcome from an event, read back at the PSP before it moves the books."""
        return await self._at_psp(Activity.CONFIRM_OUTCOME, check, OutcomeVerdict)

    async def finish(self, books: FinishInput) -> None:
        """Commit or release the reservation, post the ledger, write the audit."""
        self._before_call()
        await workflow.execute_local_activity(
            Activity.FINISH, books, start_to_close_timeout=DB_TIMEOUT, retry_policy=DB_RETRY
        )

    async def reverse(self, late: LateFailureInput) -> bool:
        return await self._local(Activity.REVERSE, late, bool, DB_TIMEOUT, DB_RETRY)

    async def restock(self, restock: RestockInput) -> RestockResult:
        return await self._local(Activity.RESTOCK, restock, RestockResult, DB_TIMEOUT, DB_RETRY)

    async def notify(self, notice: NotifyInput) -> None:
        self._before_call()
        await workflow.execute_activity(
            Activity.NOTIFY, notice, start_to_close_timeout=NOTIFY_TIMEOUT, retry_policy=NOTIFY_RETRY
        )

    async def _local(
        self, name: str, argument: object, result_type: type[T], timeout: timedelta, retry: RetryPolicy
    ) -> T:
        self._before_call()
        result: T = await workflow.execute_local_activity(
            name, argument, result_type=result_type, start_to_close_timeout=timeout, retry_policy=retry
        )
        return result

    async def _at_psp(self, name: str, argument: object, result_type: type[T]) -> T:
        self._before_call()
        result: T = await workflow.execute_activity(
            name,
            argument,
            result_type=result_type,
            start_to_close_timeout=self._psp_timeout,
            retry_policy=PSP_RETRY,
            task_queue=self._psp_queue(),
        )
        return result

    def _psp_queue(self) -> str | None:
        """The PSP account's queue, whose rate limit keeps a burst of refunds under the account's
        limit; refunds started before PSP_TASK_QUEUES call the PSP from the workflow's queue."""
        if not self._patches.psp_task_queues():
            return None
        return psp_task_queue(workflow.info().task_queue, self._provider, self._merchant_id)
