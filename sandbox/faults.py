"""Injected faults: each applies to the next N PSP calls that match its method and path prefix."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal, cast, get_args

from sandbox.stats import CallStats

FaultKind = Literal["error_500", "error_500_stored", "lose_response", "rate_limit", "slow"]
"""What an injected fault does to the next matching PSP call.

- `error_500`: answer 500 before the endpoint executes; nothing is stored under the idempotency key.
- `error_500_stored`: the endpoint "began executing" and stored a 500 under the key, without effect.
- `lose_response`: execute and commit, store the response, then close the socket without answering.
- `rate_limit`: answer 429 with `Retry-After` before executing; nothing stored.
- `slow`: sleep `delay_ms` after the key is taken, then execute (the effect commits even if the
  client went away meanwhile).
"""
FAULT_KINDS: frozenset[str] = frozenset(get_args(FaultKind))

FaultStage = Literal["entry", "execute"]
"""`entry`: before idempotency and execution (500, 429). `execute`: once the endpoint begins."""

_STAGE: dict[str, FaultStage] = {
    "error_500": "entry",
    "rate_limit": "entry",
    "error_500_stored": "execute",
    "lose_response": "execute",
    "slow": "execute",
}


@dataclass
class Fault:
    kind: FaultKind
    remaining: int = 1
    path_prefix: str = "/v1/"
    method: str | None = None
    retry_after_seconds: float = 1.0
    delay_ms: int = 1000

    @property
    def stage(self) -> FaultStage:
        return _STAGE[self.kind]

    def matches(self, stage: FaultStage, method: str, path: str) -> bool:
        return (
            self.remaining > 0
            and self.stage == stage
            and path.startswith(self.path_prefix)
            and (self.method is None or self.method == method)
        )

    @classmethod
    def from_json(cls, payload: Mapping[str, Any]) -> Fault:
        """Parse the control API's body; raise ValueError with a readable message."""
        kind = payload.get("kind")
        if kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {sorted(FAULT_KINDS)}")
        count = payload.get("count", 1)
        if not isinstance(count, int) or count < 1:
            raise ValueError("count must be a positive integer")
        prefix = payload.get("path_prefix") or "/v1/"
        method = payload.get("method")
        if not isinstance(prefix, str) or (method is not None and not isinstance(method, str)):
            raise ValueError("path_prefix and method must be strings")
        retry_after = payload.get("retry_after", 1.0)
        delay_ms = payload.get("delay_ms", 1000)
        if not isinstance(retry_after, int | float) or retry_after < 0:
            raise ValueError("retry_after must be a non-negative number of seconds")
        if not isinstance(delay_ms, int) or delay_ms < 0:
            raise ValueError("delay_ms must be a non-negative integer")
        return cls(
            kind=cast(FaultKind, kind),
            remaining=count,
            path_prefix=prefix,
            method=method.upper() if method else None,
            retry_after_seconds=float(retry_after),
            delay_ms=delay_ms,
        )


class FaultRegistry:
    def __init__(self, stats: CallStats) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._stats = stats

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, stage: FaultStage, method: str, path: str) -> Fault | None:
        """Consume one use of the first fault matching this call at this stage."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(stage, method, path):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    self._stats.record_fault(fault.kind)
                    return fault
        return None

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(fault) for fault in self._faults]
