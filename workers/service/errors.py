"""Every error leaves as JSON `{"error": {"code", "message"}}`; never a stack trace."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from domain.status import ErrorCode

log = logging.getLogger("refunds.service")


class ApiError(Exception):
    def __init__(self, status: int, code: ErrorCode | str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = str(code)
        self.message = message
        self.details = details


def temporal_unavailable(err: Exception, what: str) -> ApiError:
    """Temporal could not be reached: the client learns what to do, the log keeps what went wrong."""
    log.warning("temporal unavailable while %s: %s", what, err)
    return ApiError(503, ErrorCode.TEMPORAL_UNAVAILABLE, f"{what} is not possible right now; retry shortly")


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error}


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: Any = None  # present only where there is more to say (a validation error's fields)


class ErrorResponse(BaseModel):
    """The body of every error, as `error_body` makes it."""

    error: ErrorDetail


_MEANINGS = {
    400: "The body is not JSON, or not what this route reads",
    401: "No valid credentials: a missing, invalid or expired signature or bearer token",
    403: "The credentials are valid but do not reach this",
    404: "No such refund (or not the caller's), or nothing configured here",
    409: "Refused in the refund's current state",
    413: "The body is over this route's limit",
    422: "The request is invalid",
    503: "Temporal or the database cannot be reached right now; retry shortly",
}


def error_responses(*statuses: int | tuple[int, str]) -> dict[int | str, dict[str, Any]]:
    """`responses=` for the errors a route answers with, each a status (its usual meaning) or a
    (status, meaning) pair: the OpenAPI document then shows the error body they all share."""
    documented: dict[int | str, dict[str, Any]] = {}
    for entry in statuses:
        status, meaning = entry if isinstance(entry, tuple) else (entry, _MEANINGS[entry])
        documented[status] = {"model": ErrorResponse, "description": meaning}
    return documented


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, err: ApiError) -> JSONResponse:
        return JSONResponse(error_body(err.code, err.message, err.details), status_code=err.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        details = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in err.errors()
        ]
        return JSONResponse(
            error_body(ErrorCode.INVALID_REQUEST, "request is invalid", details), status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, err: StarletteHTTPException) -> JSONResponse:
        named = {404: ErrorCode.NOT_FOUND, 413: ErrorCode.REQUEST_TOO_LARGE}
        code = named.get(err.status_code, f"http_{err.status_code}")
        return JSONResponse(error_body(code, str(err.detail)), status_code=err.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, err: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return JSONResponse(error_body("internal_error", "internal error"), status_code=500)
