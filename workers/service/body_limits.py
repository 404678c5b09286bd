"""Every route refuses a body over its limit with 413 without keeping it: a declared length over the
limit is answered before the app sees it, and a body sent without one (chunked) is cut off as soon
as it passes the limit, so nothing unauthenticated can make the service buffer more than a limit's
worth.

Before that 413 goes out, the rest of the body is read and thrown away, up to DRAIN_BYTES past the
limit and for DRAIN_SECONDS at most: a client that sends its whole body before reading the answer
(Python's `requests` and `urllib`, most PSP SDKs) would otherwise see a connection reset instead of
the 413, since a socket closed with unread data is reset by the kernel, the answer lost with it. A
declared length further over is answered at once, the connection closed; so is a client that
waits for `100 Continue` before it sends (curl), having sent nothing."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio
from starlette.exceptions import HTTPException

from domain.status import ErrorCode
from workers.service.errors import ApiError, error_body
from workers.settings import Settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

DRAIN_BYTES = 4 * 1024 * 1024  # read and discarded past a route's limit, so its 413 is read
DRAIN_SECONDS = 5.0  # and for no longer than this: a slow sender is then cut off


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
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            drained = _drainable(headers, limit) and await _drain(receive)
            await _answer(send, _too_large(limit), close=not drained)
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
                    if message.get("more_body", False):
                        await _drain(receive)
                    raise HTTPException(413, _too_large(limit).message)
            return message

        await self.app(scope, limited, send)


def _drainable(headers: dict[bytes, bytes], limit: int) -> bool:
    """A declared body worth reading to its end: within the bound, and already on its way (a client
    that asked for `100 Continue` sends none of it before it is answered)."""
    declared = headers.get(b"content-length", b"")
    waits = headers.get(b"expect", b"").lower() == b"100-continue"
    return declared.isdigit() and int(declared) <= limit + DRAIN_BYTES and not waits


async def _drain(receive: Receive) -> bool:
    """Read the rest of a refused body and keep none of it: whether it all came within the bounds."""
    discarded = 0
    with anyio.move_on_after(DRAIN_SECONDS):
        while discarded <= DRAIN_BYTES:
            message = await receive()
            if message["type"] != "http.request":  # the client is gone
                return False
            discarded += len(message.get("body", b""))
            if not message.get("more_body", False):
                return True
    return False


async def _answer(send: Send, err: ApiError, *, close: bool) -> None:
    body = json.dumps(error_body(err.code, err.message)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:  # the body is left unread: the connection cannot carry another request
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": err.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
