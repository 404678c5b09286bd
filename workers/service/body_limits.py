"""Every route refuses a body over its limit with 413 before reading it: a declared length over the
limit is answered at once, and a body sent without one (chunked) is cut off as soon as it passes the
limit, so nothing unauthenticated can make the service buffer more than a limit's worth."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.exceptions import HTTPException

from domain.status import ErrorCode
from workers.service.errors import ApiError, error_body
from workers.settings import Settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


def limit_for(settings: Settings, path: str) -> int:
    """PSPs batch events and the Temporal UI decodes whole payloads; everything else is a request."""
    if path.startswith("/webhooks/"):
        return settings.max_webhook_bytes
    if path.startswith("/codec"):
        return settings.max_codec_bytes
    return settings.max_request_bytes


def _too_large(limit: int) -> ApiError:
    return ApiError(413, ErrorCode.REQUEST_TOO_LARGE, f"the body is over this route's limit of {limit} bytes")


class BodyLimit:
    def __init__(self, app: App, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = limit_for(self.settings, scope["path"])
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _answer(send, _too_large(limit))
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:  # answered by the app's error handler, as JSON; an HTTPException
                    # because FastAPI passes those on where it reads a route's body itself (a review's
                    # reason), where any other error became `400 There was an error parsing the body`
                    raise HTTPException(413, _too_large(limit).message)
            return message

        await self.app(scope, limited, send)


async def _answer(send: Send, err: ApiError) -> None:
    body = json.dumps(error_body(err.code, err.message)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": err.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
