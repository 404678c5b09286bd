"""Webhook delivery from the store's outbox: signed per PSP, retried on failure, every attempt recorded.

Events are written in the same transaction as the change they announce, so a restart resumes
delivery of whatever was not yet accepted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

import httpx

from adapters.sandbox.background import DueLoop
from adapters.sandbox.store import DeliveryRow, EventRow, SandboxStore, now_ms

log = logging.getLogger(__name__)

Signer = Callable[[str], dict[str, str]]
"""Headers a PSP sends with this payload (its signature)."""


class WebhookDispatcher:
    def __init__(
        self,
        store: SandboxStore,
        signers: Mapping[str, Signer],
        *,
        retry_delays: Sequence[float] = (0.5, 2.0, 5.0),
        timeout_seconds: float = 5.0,
    ) -> None:
        self._store = store
        self._signers = signers
        self._retry_delays = tuple(retry_delays)
        self._client = httpx.Client(timeout=timeout_seconds)
        self._loop = DueLoop("sandbox-webhooks", self._step)

    def start(self) -> None:
        self._loop.start()

    def wake(self) -> None:
        self._loop.wake()

    def stop(self) -> None:
        self._loop.stop()
        self._client.close()

    def _step(self) -> int | None:
        while True:
            with self._store.transaction() as tx:
                event = tx.next_due_event(now_ms())
                if event is None:
                    return tx.next_event_ms()
            self._deliver(event)

    def _deliver(self, event: EventRow) -> None:
        assert event.url is not None
        attempt = event.attempts + 1
        status: int | None = None
        error: str | None = None
        headers = {"Content-Type": "application/json; charset=utf-8"}
        headers |= self._signers[event.provider](event.payload)
        try:
            response = self._client.post(event.url, content=event.payload.encode(), headers=headers)
            status = response.status_code
        except httpx.HTTPError as err:
            error = f"{type(err).__name__}: {err}"
        delivered = status is not None and 200 <= status < 300
        if delivered:
            state, next_attempt = "delivered", None
        elif attempt <= len(self._retry_delays):
            state, next_attempt = "pending", now_ms() + int(self._retry_delays[attempt - 1] * 1000)
        else:
            state, next_attempt = "failed", None
            log.warning("webhook %s to %s failed after %d attempts", event.id, event.url, attempt)
        delivery = DeliveryRow(
            event_id=event.id,
            provider=event.provider,
            type=event.type,
            url=event.url,
            attempt=attempt,
            http_status=status,
            error=error,
            at_ms=now_ms(),
        )
        with self._store.transaction() as tx:
            tx.record_attempt(event, delivery, state, next_attempt)
