"""How a refund ends early (`Stop`) and how it waits for ops instead of failing (`needs_attention`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain.actors import Actor
    from domain.contracts import CancelInput
    from domain.status import ErrorCode, RefundStatus

from workflows.refund.patches import Patches
from workflows.refund.record import RefundRecord

T = TypeVar("T")


class Stop(Exception):
    """Ends processing with a final status; raised by steps, caught once in `run`."""

    def __init__(self, status: RefundStatus, code: ErrorCode | None, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def failure_of(err: ActivityError | ApplicationError) -> tuple[ErrorCode, str]:
    """The code and message ops see for a step that failed for good. A local step's failure comes
    as its own ApplicationError, a scheduled one's as an ActivityError around it."""
    step = err.activity_type if isinstance(err, ActivityError) else "local step"
    cause = err.cause if isinstance(err, ActivityError) else err
    if isinstance(cause, ApplicationError):
        try:
            return ErrorCode(cause.type or ""), cause.message
        except ValueError:
            return ErrorCode.STEP_FAILED, f"{step}: {cause.message}"
    return ErrorCode.STEP_FAILED, f"{step}: {cause or err}"


class Attention:
    """A step that fails for good hands the refund to ops in `needs_attention`; their `retry` runs it
    again. Steps waiting at once (the refund and a restock) share one `needs_attention` and one retry."""

    def __init__(self, record: RefundRecord, patches: Patches) -> None:
        self._record = record
        self._patches = patches
        self._psp = Actor.psp(record.state.provider.value)
        self._retries = 0  # ops retries so far; each wakes every step waiting in needs_attention
        self._retry_requested_by: str | None = None
        self._waiters = 0
        self._status_before = RefundStatus.RECEIVED
        self._cancellable = 0  # waiters before the PSP call: no money can have moved for them
        self.cancelled: CancelInput | None = None

    async def until_done(self, step: Callable[[], Awaitable[T]]) -> T:
        """Run a step; when it fails for good, ops see why in `needs_attention` and their `retry`
        runs it again. A refund workflow never ends `Failed` with its money unaccounted for."""
        while True:
            try:
                return await step()
            except (ActivityError, ApplicationError) as err:
                if not self._patches.edge_paths:
                    raise
                await self.wait_for_ops(*failure_of(err))

    async def wait_for_ops(
        self,
        code: ErrorCode,
        message: str,
        resolved: Callable[[], bool] | None = None,
        *,
        cancellable: bool = False,
    ) -> None:
        """Hand the refund to ops and wait until an operator asks to try again, or until `resolved`
        (the PSP's own final word) makes the question moot. A `cancellable` wait (the refund has
        not reached the PSP: no money can have moved) also ends when ops cancel the refund: the
        caller then stops it (`stop_if_cancelled`)."""
        record = self._record
        if self._waiters == 0:
            self._status_before = record.state.status
        self._waiters += 1
        self._cancellable += cancellable
        record.update(failure_code=code, failure_message=message)
        record.set_status(RefundStatus.NEEDS_ATTENTION)
        retries = self._retries
        await record.wait(
            lambda: (
                self._retries > retries
                or (resolved is not None and resolved())
                or (cancellable and self.cancelled is not None)
            )
        )
        self._waiters -= 1
        self._cancellable -= cancellable
        if cancellable and self.cancelled is not None:
            return  # the caller stops the refund; the status is the stop's
        if self._retries > retries:
            actor = Actor.operator(str(self._retry_requested_by))
            record.note("ops_retry", actor=actor, reason_code=code.value)
        else:  # the PSP's final word came first
            record.note("attention_resolved", actor=self._psp, reason_code=code.value)
        if self._waiters == 0 and record.state.status is RefundStatus.NEEDS_ATTENTION:
            record.update(failure_code=None, failure_message="")
            record.set_status(self._status_before)

    def retry(self, operator: str) -> None:
        """Ops ask every step waiting in needs_attention to try again."""
        self._retry_requested_by = operator
        self._retries += 1

    def cancel(self, request: CancelInput) -> None:
        self.cancelled = request

    def check_cancel(self) -> None:
        """Only a refund waiting for ops, and only where no money can have moved: every step waiting
        must be one before the PSP call (a restock or the PSP step itself is not)."""
        status = self._record.state.status
        if status is not RefundStatus.NEEDS_ATTENTION or not self._waiters:
            raise ApplicationError(
                f"refund is {status.value}, not needs_attention", type=ErrorCode.INVALID_STATE
            )
        if self._cancellable != self._waiters or self.cancelled is not None:
            raise ApplicationError(
                "refund waits at a step after its PSP call (money may have moved): retry it instead",
                type=ErrorCode.INVALID_STATE,
            )

    def stop_if_cancelled(self, code: ErrorCode) -> None:
        """After a cancellable wait: end the refund as ops asked, no money moved."""
        cancelled = self.cancelled
        if cancelled is not None:
            actor = Actor.operator(cancelled.operator)
            detail = {"reason": cancelled.reason}
            self._record.note("cancelled", actor=actor, reason_code=code.value, detail=detail)
            message = f"cancelled by {cancelled.operator}: {cancelled.reason}"
            raise Stop(RefundStatus.CANCELLED, code, message)

    def check_retry(self) -> None:
        status = self._record.state.status
        if status is not RefundStatus.NEEDS_ATTENTION and not self._waiters:
            raise ApplicationError(
                f"refund is {status.value}, not needs_attention", type=ErrorCode.INVALID_STATE
            )
