"""A daemon thread that runs one step whenever it is due or woken, until stopped."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class DueLoop:
    """Calls `step()`, which does what is due and returns when it next needs to run (ms epoch)."""

    def __init__(self, name: str, step: Callable[[], int | None], max_wait_seconds: float = 1.0) -> None:
        self._name = name
        self._step = step
        self._max_wait_seconds = max_wait_seconds
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                next_ms = self._step()
            except Exception:
                log.exception("%s step failed", self._name)
                next_ms = None
            wait = self._max_wait_seconds
            if next_ms is not None:
                wait = min(wait, max(next_ms / 1000 - time.time(), 0.0))
            if wait > 0:
                self._wake.wait(wait)
