"""PSP errors become Temporal application errors: retryable ones retried, final ones named."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity
from temporalio.exceptions import ApplicationError

from adapters.psp.base import PspError
from domain.naming import REFUND_WORKFLOW, workflow_id
from domain.status import ErrorCode


def application_error(err: PspError) -> ApplicationError:
    if err.key_poisoned:
        return ApplicationError(err.message, type=ErrorCode.PSP_KEY_POISONED.value, non_retryable=True)
    delay = timedelta(seconds=err.retry_after_seconds) if err.retry_after_seconds is not None else None
    return ApplicationError(
        err.message,
        {"http_status": err.http_status, "psp_request_id": err.psp_request_id},
        type=err.code.value,
        non_retryable=not err.retryable,
        next_retry_delay=delay,
    )


def refuse_foreign_refund(refund: str) -> None:
    """A RefundWorkflow touches the books, the trail and the PSP of its own refund only. The service
    starts refund `R` as `refund-R`; a RefundWorkflow started by hand under another id naming `R` (its
    input copied out of a history, its signature forged, its review keys the insider's own) must not
    settle, reserve, refund, reverse or write `R`'s trail: it waits for ops instead, where it shows."""
    info = activity.info()
    if info.workflow_type == REFUND_WORKFLOW and info.workflow_id != workflow_id(refund):
        raise ApplicationError(
            f"workflow {info.workflow_id} is not refund {refund}'s ({workflow_id(refund)}): "
            "started outside the service, it may not act on that refund",
            type=ErrorCode.UNAUTHORIZED.value,
            non_retryable=True,
        )
