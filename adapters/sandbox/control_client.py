"""The HTTP plumbing shared by the sandboxes' typed control clients."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

import httpx


class ControlClient:
    """A JSON client for one control API under `/_sandbox`; subclasses name their `PREFIX`."""

    PREFIX = "/_sandbox"

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
