"""Plumbing every sandbox control API shares: loopback only, regex routes, JSON in and out."""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from adapters.sandbox.routing import SandboxRequest, SandboxResponse

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
