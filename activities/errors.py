"""PSP errors become Temporal application errors: retryable ones retried, final ones named."""

from __future__ import annotations

from datetime import timedelta

from temporalio.exceptions import ApplicationError

from adapters.psp.base import PspError
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
