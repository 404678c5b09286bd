"""Plain request/response values and a prefix router, so each PSP's handler is its own module."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from sandbox.stats import CallStats

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SandboxRequest:
    method: str
    path: str
    query: str
    headers: Mapping[str, str]  # keys lower-cased
    body: bytes
    client_host: str
    request_id: str

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass
class SandboxResponse:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    drop_connection: bool = False
    """Close the socket without writing anything (the "response lost" fault)."""

    @classmethod
    def json(cls, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> SandboxResponse:
        return cls(status, json.dumps(payload).encode(), dict(headers or {}))


class RouteHandler(Protocol):
    def handle(self, request: SandboxRequest) -> SandboxResponse: ...


class Router:
    """First mounted prefix that matches wins; Stripe owns `/v1/`, the control API `/_sandbox/`."""

    def __init__(self, stats: CallStats) -> None:
        self._mounts: list[tuple[str, RouteHandler, bool]] = []
        self._stats = stats

    def mount(self, prefix: str, handler: RouteHandler, *, count_calls: bool = True) -> None:
        self._mounts.append((prefix, handler, count_calls))
        self._mounts.sort(key=lambda mount: len(mount[0]), reverse=True)

    def handle(self, request: SandboxRequest) -> SandboxResponse:
        for prefix, handler, count_calls in self._mounts:
            if request.path.startswith(prefix):
                if count_calls:
                    self._stats.record_call(request.method, request.path)
                try:
                    return handler.handle(request)
                except Exception:
                    log.exception("sandbox handler failed on %s %s", request.method, request.path)
                    return SandboxResponse.json(
                        500, {"error": {"type": "api_error", "message": "sandbox bug"}}
                    )
        return SandboxResponse.json(
            404,
            {
                "error": {
                    "type": "invalid_request_error",
                    "message": f"Unrecognized request URL ({request.method}: {request.path}).",
                }
            },
        )
