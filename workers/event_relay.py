"""The relay that delivers outbound events: it runs beside the Temporal worker in every worker
process and reads what is owed from the database.

Why a relay over the outbox and not a Temporal workflow per endpoint: an event is born in a
database transaction (the audit row's), and the deliveries it is owed are born with it; the relay
reads exactly that, so nothing committed can go unsent for want of a signal that a crash lost
between the commit and the signal. A lease on each endpoint (adapters/db/outbound_events.py) lets
any number of worker processes relay at once, one per endpoint, and gives a dead one's endpoints
back within about a minute; retries, their
three-day window and order per refund live with the deliveries, in one place ops can query. Each
endpoint is served by its own task, one delivery at a time (its order), so a slow or dead endpoint
holds back only itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from adapters.db import event_endpoints, outbound_events
from adapters.db.engine import Database
from adapters.db.outbound_events import Attempt, Due
from adapters.event_sender import Answer, EventSender, now, sign

LOG = logging.getLogger(__name__)
POLL_SECONDS = 0.2  # how soon a new event is noticed
BATCH = 5  # deliveries sent per lease renewal: small, so the lease stays short
RELAY_THREADS = 4  # database calls at once, across every endpoint served
T = TypeVar("T")


class EventRelay:
    def __init__(self, db: Database, sender: EventSender, clock: Callable[[], datetime] = now) -> None:
        self._db = db
        self._sender = sender
        self._clock = clock
        self._serving: dict[str, asyncio.Task[None]] = {}
        # the endpoint's lease outlasts sending a batch at the endpoint's timeout, and not by much:
        # a relay killed mid-batch holds the endpoint back only this long
        self._lease = timedelta(seconds=BATCH * (sender.timeout_seconds + 1) + 5)
        self.disabled: list[str] = []  # endpoints this relay disabled (their three days ran out)
        self._threads = ThreadPoolExecutor(max_workers=RELAY_THREADS, thread_name_prefix="event-relay")
        self.relay_id = f"relay-{uuid.uuid4().hex[:16]}"  # who serves an endpoint (its lease)

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until `stop`, then let each endpoint's in-flight delivery finish."""
        try:
            while not stop.is_set():
                await self.relay_once()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), POLL_SECONDS)
        finally:
            await self.drain()
            self._threads.shutdown(wait=False)

    async def relay_once(self) -> None:
        """Start serving each endpoint that is owed a due delivery and not served already."""
        for endpoint_id in await self._in_db(outbound_events.endpoints_due, self._db, self._clock()):
            if endpoint_id not in self._serving:
                task = asyncio.create_task(self._serve(endpoint_id), name=f"events:{endpoint_id}")
                self._serving[endpoint_id] = task
                task.add_done_callback(self._served)

    def _served(self, task: asyncio.Task[None]) -> None:
        self._serving.pop(task.get_name().removeprefix("events:"), None)
        if not task.cancelled() and task.exception() is not None:  # the next pass serves it again
            LOG.warning("delivering events to %s stopped: %s", task.get_name(), task.exception())

    async def drain(self) -> None:
        if self._serving:
            await asyncio.gather(*self._serving.values(), return_exceptions=True)

    async def _serve(self, endpoint_id: str) -> None:
        """Deliver what the endpoint is owed, in order per refund, until nothing is due; then let
        another relay serve it at once."""
        try:
            while True:
                due = await self._in_db(
                    outbound_events.lease_due,
                    self._db,
                    endpoint_id,
                    self.relay_id,
                    self._clock(),
                    BATCH,
                    self._lease,
                )
                if not due or not await self._deliver(endpoint_id, due):
                    return
        finally:
            await self._in_db(outbound_events.stop_serving, self._db, endpoint_id, self.relay_id)

    async def _deliver(self, endpoint_id: str, due: list[Due]) -> bool:
        """Send a batch (each refund's earliest event still owed) in order; False once the endpoint
        is gone or disabled (one disabled by hand mid-batch gets at most the rest of that batch)."""
        endpoint, keys = await self._in_db(self._endpoint, endpoint_id)
        if endpoint is None or keys is None or not endpoint.enabled:
            return False
        secrets = (keys.current, keys.previous) if keys.previous else (keys.current,)
        for delivery in due:
            at = self._clock()
            signed = sign(delivery.event_id, delivery.payload, secrets, now())  # signed when sent
            try:
                answer = await self._sender.send(endpoint.url, signed)
            except Exception as err:  # whatever an endpoint makes of us, the attempt is kept
                answer = Answer(None, 0, f"not sent: {type(err).__name__}: {err}")
            attempt = Attempt(at, answer.status_code, answer.latency_ms, answer.text)
            disabled = await self._in_db(
                outbound_events.record_attempt, self._db, endpoint_id, delivery, attempt
            )
            if disabled:
                self.disabled.append(endpoint_id)
                return False
        return True

    async def _in_db(self, call: Callable[..., T], *args: Any) -> T:
        """A database call on the relay's own threads: never queued behind the worker's other
        work on the event loop's default executor."""
        return await asyncio.get_running_loop().run_in_executor(self._threads, partial(call, *args))

    def _endpoint(
        self, endpoint_id: str
    ) -> tuple[event_endpoints.Endpoint | None, event_endpoints.SigningSecrets | None]:
        with self._db.transaction() as session:
            return (
                event_endpoints.get(session, endpoint_id),
                event_endpoints.signing_secrets(session, endpoint_id, self._clock()),
            )
