"""Plumbing every sandbox control API shares, on both sides of the wire.

Server side: loopback only, regex routes, JSON in and out (each PSP's `api` module routes its own).
Client side: `ControlClient`, the HTTP plumbing under each PSP's typed client (its `control` module).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Self

import httpx

from sandbox.faults import FaultKind
from sandbox.routing import SandboxRequest, SandboxResponse

ControlRoute = tuple[str, re.Pattern[str], Callable[[SandboxRequest, list[str]], Any]]


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def refuse_remote(request: SandboxRequest) -> SandboxResponse | None:
    """Control APIs change money at will: only this machine may call them."""
    if is_loopback(request.client_host):
        return None
    return SandboxResponse.json(403, {"error": {"message": "loopback clients only"}})


def dispatch(routes: Sequence[ControlRoute], request: SandboxRequest, path: str) -> SandboxResponse:
    """Run the route matching method and path; a ControlError becomes its status and message."""
    for method, pattern, route in routes:
        match = pattern.fullmatch(path)
        if match and method == request.method:
            try:
                return SandboxResponse.json(200, route(request, list(match.groups())))
            except ControlError as err:
                return SandboxResponse.json(err.status, {"error": {"message": err.message}})
    missing = f"no control route {request.method} {request.path}"
    return SandboxResponse.json(404, {"error": {"message": missing}})


def json_body(request: SandboxRequest) -> dict[str, Any]:
    if not request.body:
        return {}
    try:
        body = json.loads(request.body)
    except ValueError as err:
        raise ControlError(400, f"invalid JSON: {err}") from err
    if not isinstance(body, dict):
        raise ControlError(400, "the body must be a JSON object")
    return body


# client -------------------------------------------------------------------------------------------


class ControlClient:
    """A JSON client for one control API under `/_sandbox`; subclasses name their `PREFIX`."""

    PREFIX = "/_sandbox"
    FAULT_PATHS = "/"  # which of the PSP's API paths a fault applies to by default

    def __init__(self, base_url: str, timeout_seconds: float = 10.0) -> None:
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout_seconds)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, f"{self.PREFIX}/{path.lstrip('/')}", **kwargs)
        response.raise_for_status()
        return response.json()

    def inject_fault(
        self,
        kind: FaultKind,
        *,
        count: int = 1,
        path_prefix: str | None = None,
        method: str | None = None,
        retry_after: float = 1.0,  # seconds, sent as the 429's Retry-After
        delay_ms: int = 1000,
    ) -> None:
        """The next `count` matching calls fail: `error_500`, `error_500_stored` (Stripe), `rate_limit`
        (429 + Retry-After), `lose_response` (commit, then drop the connection) or `slow`."""
        body = {
            "kind": kind,
            "count": count,
            "path_prefix": path_prefix or self.FAULT_PATHS,
            "method": method,
            "retry_after": retry_after,
            "delay_ms": delay_ms,
        }
        self._call("POST", "faults", json=body)

    def faults(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "faults")["faults"])

    def clear_faults(self) -> None:
        """Clears the server's fault registry: every PSP's faults, not only this one's."""
        self._call("DELETE", "faults")
