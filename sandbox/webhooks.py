"""Webhook delivery from an outbox: signed per PSP, retried on failure, every attempt recorded.

One sender for every PSP. Each PSP keeps its events in its own outbox table (Stripe in the store's
`webhook_events`, Adyen in `adyen_notifications`, PayPal in `paypal_outbox`) and says, through an
`Outbox`, which event is due, which headers go with it and how an attempt is recorded. Events are
written in the same transaction as the change they announce, so a restart resumes delivery of
whatever was not yet accepted.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import httpx

from sandbox.background import DueLoop
from sandbox.store import DeliveryRow, SandboxStore, StoreTx, now_ms

log = logging.getLogger(__name__)

Signer = Callable[[str], dict[str, str]]
"""Headers a PSP sends with this payload (its signature)."""


@dataclass(frozen=True)
class OutgoingEvent:
    """A due event as its outbox hands it to the sender."""

    id: str
    provider: str
    type: str
    url: str
    payload: str
    attempts: int  # made so far


@dataclass(frozen=True)
class Attempt:
    """One delivery attempt's outcome, for the outbox to record."""

    number: int
    state: str  # "delivered" | "pending" (retried at next_attempt_ms) | "failed"
    next_attempt_ms: int | None
    http_status: int | None
    error: str | None
    at_ms: int


class Outbox(Protocol):
    label: str
    """How the log names an event of this outbox ("stripe webhook", "adyen notification")."""

    def next_due(self, tx: StoreTx, now: int) -> OutgoingEvent | None: ...

    def next_due_ms(self, tx: StoreTx) -> int | None: ...

    def headers(self, event: OutgoingEvent) -> dict[str, str]: ...

    def record(self, tx: StoreTx, event: OutgoingEvent, attempt: Attempt) -> None: ...


class WebhookSender:
    """POSTs due events in order; a 2xx answer delivers, anything else retries after the next delay."""

    def __init__(
        self,
        store: SandboxStore,
        outbox: Outbox,
        *,
        name: str,
        retry_delays: Sequence[float] = (0.5, 2.0, 5.0),
        timeout_seconds: float = 5.0,
    ) -> None:
        self._store = store
        self._outbox = outbox
        self._retry_delays = tuple(retry_delays)
        self._client = httpx.Client(timeout=timeout_seconds)
        self._loop = DueLoop(name, self._step)
        self._closed = False

    def start(self) -> None:
        self._loop.start()

    def wake(self) -> None:
        self._loop.wake()

    def stop(self) -> None:
        self._closed = True
        self._loop.stop()
        self._client.close()

    def _step(self) -> int | None:
        try:
            while not self._closed:
                with self._store.transaction() as tx:
                    event = self._outbox.next_due(tx, now_ms())
                    if event is None:
                        return self._outbox.next_due_ms(tx)
                self._deliver(event)
        except sqlite3.ProgrammingError:
            self._closed = True  # the server closed its store: it is shutting down
        return None

    def _deliver(self, event: OutgoingEvent) -> None:
        number = event.attempts + 1
        status: int | None = None
        error: str | None = None
        try:
            response = self._client.post(
                event.url, content=event.payload.encode(), headers=self._outbox.headers(event)
            )
            status = response.status_code
        except httpx.HTTPError as err:
            error = f"{type(err).__name__}: {err}"
            log.debug("%s %s: %s", self._outbox.label, event.id, error)
        if status is not None and 200 <= status < 300:
            state, next_attempt = "delivered", None
        elif number <= len(self._retry_delays):
            state, next_attempt = "pending", now_ms() + int(self._retry_delays[number - 1] * 1000)
        else:
            state, next_attempt = "failed", None
            log.warning(
                "%s %s to %s failed after %d attempts", self._outbox.label, event.id, event.url, number
            )
        attempt = Attempt(number, state, next_attempt, status, error, now_ms())
        with self._store.transaction() as tx:
            self._outbox.record(tx, event, attempt)


class StoreOutbox:
    """The store's own outbox (`webhook_events`, attempts in `webhook_deliveries`): Stripe's events,
    signed by the signer of their provider."""

    label = "webhook"

    def __init__(self, signers: Mapping[str, Signer]) -> None:
        self._signers = signers

    def next_due(self, tx: StoreTx, now: int) -> OutgoingEvent | None:
        row = tx.next_due_event(now)
        if row is None:
            return None
        assert row.url is not None
        return OutgoingEvent(row.id, row.provider, row.type, row.url, row.payload, row.attempts)

    def next_due_ms(self, tx: StoreTx) -> int | None:
        return tx.next_event_ms()

    def headers(self, event: OutgoingEvent) -> dict[str, str]:
        headers = {"Content-Type": "application/json; charset=utf-8"}
        return headers | self._signers[event.provider](event.payload)

    def record(self, tx: StoreTx, event: OutgoingEvent, attempt: Attempt) -> None:
        delivery = DeliveryRow(
            event_id=event.id,
            provider=event.provider,
            type=event.type,
            url=event.url,
            attempt=attempt.number,
            http_status=attempt.http_status,
            error=attempt.error,
            at_ms=attempt.at_ms,
        )
        tx.record_attempt(event.id, delivery, attempt.state, attempt.next_attempt_ms)
