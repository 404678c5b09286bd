"""`refunds mcp --http`: the MCP tools over streamable HTTP, each caller acting with its own key.

Every HTTP request must carry an API client's key (`Authorization: Bearer rfc_...`); the gate asks
the service who the key is (`GET /v1/client`) before the protocol sees the request, so an unknown or
revoked key gets 401 at once, and the tools then act with that same key. Nothing is cached: a key
revoked a moment ago is refused on its next request. The server is stateless (no MCP sessions), so
no request can ride on another caller's session.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import uvicorn
from mcp.server.fastmcp import Context
from mcp.server.fastmcp.exceptions import ToolError
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from domain.status import ErrorCode
from workers.bearer import bearer_token
from workers.listening import bound
from workers.mcp_server import TIMEOUT_SECONDS, build_server, key_shaped

PATH = "/mcp"
CHALLENGE = 'Bearer realm="refunds", error="invalid_token"'


def caller_key(ctx: Context[Any, Any, Any]) -> str:
    """The key of the HTTP request this tool call came in (the gate let it through)."""
    request = ctx.request_context.request
    if not isinstance(request, Request):
        raise ToolError("no HTTP request carries this call's key")
    return bearer_token(request.headers.get("authorization"))


class KeyGate:
    """Refuse, before MCP sees it, any request whose key the service does not know."""

    def __init__(self, app: ASGIApp, service_base: str) -> None:
        self.app = app
        self.service_base = service_base

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # the lifespan: the session manager starts and stops with it
            await self.app(scope, receive, send)
            return
        refusal = await self._refusal(bearer_token(Headers(scope=scope).get("authorization")))
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, code, message = refusal
        headers = [(b"content-type", b"application/json")]
        if status == 401:
            headers.append((b"www-authenticate", CHALLENGE.encode()))
        body = json.dumps({"error": {"code": code.value, "message": message}}).encode()
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _refusal(self, key: str) -> tuple[int, ErrorCode, str] | None:
        if not key_shaped(key):  # keys are printable ASCII: other text is none
            return 401, ErrorCode.UNAUTHORIZED, "an API client key is required (Bearer rfc_...)"
        try:
            async with httpx.AsyncClient(base_url=self.service_base, timeout=TIMEOUT_SECONDS) as http:
                answer = await http.get("/v1/client", headers={"Authorization": f"Bearer {key}"})
        except httpx.HTTPError:
            return 503, ErrorCode.SERVICE_UNAVAILABLE, "the refund service cannot be reached; retry shortly"
        if answer.status_code == 200:
            return None
        if answer.status_code == 401:
            return 401, ErrorCode.UNAUTHORIZED, "unknown or revoked client key"
        status = answer.status_code
        return 503, ErrorCode.SERVICE_UNAVAILABLE, f"the refund service answered HTTP {status}; retry shortly"


async def serve_http(service_base: str, host: str, port: int) -> None:
    server = build_server(service_base, caller_key, host=host)
    app = KeyGate(server.streamable_http_app(), service_base)
    listener = bound(host, port, "REFUNDS_MCP_PORT")
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    print(f"refunds mcp listening on http://{host}:{port}{PATH} (Bearer <client key>)", flush=True)
    await uvicorn.Server(config).serve(sockets=[listener])
