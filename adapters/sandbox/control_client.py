"""The HTTP plumbing shared by the sandboxes' typed control clients."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

import httpx

from adapters.sandbox.kinds import FaultKind


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
