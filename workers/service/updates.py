"""Steering a running refund with a validated Update: the caller learns at once if it is refused."""

from __future__ import annotations

from typing import Any

from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from domain.naming import workflow_id
from domain.status import ErrorCode
from workers.service.deps import Services
from workers.service.errors import ApiError, temporal_unavailable
from workers.service.reads import current_state


async def run_update(services: Services, request_id: str, update: Any, argument: Any) -> Any:
    """The update's result; 409 with the workflow's own code when its validator refuses, 404 when
    no refund is running under that id, 503 when Temporal cannot be reached."""
    handle = services.temporal.get_workflow_handle(workflow_id(request_id))
    try:
        return await handle.execute_update(update, argument)
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        code = cause.type if isinstance(cause, ApplicationError) and cause.type else "update_failed"
        message = cause.message if isinstance(cause, ApplicationError) else str(err)
        raise ApiError(409, code, message) from err
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            raise await _not_running(services, request_id) from err
        raise temporal_unavailable(err, "deciding this refund") from err


async def _not_running(services: Services, request_id: str) -> ApiError:
    """409 naming how a finished refund ended; 404 for one that never was."""
    finished = await current_state(services, workflow_id(request_id))
    if finished is None:
        return ApiError(404, ErrorCode.NOT_FOUND, f"no refund {request_id}")
    return ApiError(
        409,
        ErrorCode.ALREADY_FINISHED,
        f"refund {request_id} already finished ({finished.status.value})",
        {"status": finished.status.value},
    )
