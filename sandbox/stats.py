"""Counters of calls per method and path, replays and applied faults, for tests and benchmarks."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any


class CallStats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: Counter[str] = Counter()
        self._replays: Counter[str] = Counter()
        self._faults: Counter[str] = Counter()

    def record_call(self, method: str, path: str) -> None:
        with self._lock:
            self._calls[f"{method} {path}"] += 1

    def record_replay(self, method: str, path: str) -> None:
        with self._lock:
            self._replays[f"{method} {path}"] += 1

    def record_fault(self, kind: str) -> None:
        with self._lock:
            self._faults[kind] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "calls": dict(self._calls),
                "replays": dict(self._replays),
                "faults_applied": dict(self._faults),
            }

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()
            self._replays.clear()
            self._faults.clear()
