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
            raise ApiError(404, ErrorCode.NOT_FOUND, f"no running refund {request_id}") from err
        raise temporal_unavailable(err, "deciding this refund") from err
