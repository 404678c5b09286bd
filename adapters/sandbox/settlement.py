"""Settles pending refunds when their time comes, including those left pending across a restart."""

from __future__ import annotations

from adapters.sandbox.background import DueLoop
from adapters.sandbox.stripe_engine import StripeEngine


class SettlementWorker:
    def __init__(self, engine: StripeEngine) -> None:
        self._loop = DueLoop("sandbox-settlements", engine.settle_due)

    def start(self) -> None:
        self._loop.start()

    def wake(self) -> None:
        self._loop.wake()

    def stop(self) -> None:
        self._loop.stop()
