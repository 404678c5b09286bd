"""Outbound events across a worker killed mid-delivery (the relay runs in the worker process):
nothing lost, nothing reordered per refund, and a receiver that dedupes by `webhook-id` sees each
event once."""

from __future__ import annotations

import asyncio
import json
import os
import signal

from adapters.db import event_endpoints, outbound_events
from domain.outbound_events import parse_types
from sandbox.stripe.control import SandboxControl
from tests.conftest import Stack, starter_for
from tests.event_receiver import receiver
from tests.helpers import eventually, refund_body, signed_headers, unique
from tests.test_worker_crash import worker_process
from workflows.refund import RefundWorkflow

REFUNDS = 3


async def test_a_worker_killed_mid_delivery_loses_and_reorders_nothing(
    stack: Stack, sandbox: SandboxControl
) -> None:
    with receiver() as got:
        got.delay_seconds = 0.15  # a slow ERP: the kill lands while events are in flight
        with stack.database.transaction() as session:
            endpoint, _ = event_endpoints.create(session, None, got.url, parse_types("*"))
        try:
            async with starter_for(stack) as (settings, http):
                ids = [unique("evkill") for _ in range(REFUNDS)]
                for request_id in ids:
                    payment = sandbox.seed_stripe_payment(amount=9_000, currency="EUR")
                    body = refund_body(request_id, payment, amount=4_000)
                    answer = await http.post(
                        "/v1/refund-requests", content=body, headers=signed_headers(body)
                    )
                    assert answer.status_code == 202, answer.text
                env = {"REFUNDS_EVENT_TIMEOUT_SECONDS": "0.5"}
                first = worker_process(stack, settings.task_queue, **env)
                try:

                    async def heard() -> int:
                        return len(got.received)

                    await eventually(heard, lambda n: n >= 2, timeout=60)
                finally:
                    os.killpg(first.pid, signal.SIGKILL)
                    await asyncio.to_thread(first.wait)
                owed_at_kill = outbound_events.pending_count(stack.database).get(endpoint.endpoint_id, 0)
                second = worker_process(stack, settings.task_queue, **env)
                try:
                    for request_id in ids:
                        handle = stack.client.get_workflow_handle_for(
                            RefundWorkflow.run, f"refund-{request_id}"
                        )
                        assert (await handle.result()).status.value == "succeeded"

                    async def owed() -> int:
                        return outbound_events.pending_count(stack.database).get(endpoint.endpoint_id, 0)

                    await eventually(owed, lambda n: n == 0, timeout=90)
                finally:
                    os.killpg(second.pid, signal.SIGTERM)
                    await asyncio.to_thread(second.wait)
        finally:
            with stack.database.transaction() as session:
                event_endpoints.disable(session, endpoint.endpoint_id, "test over")
    assert owed_at_kill > 0  # the kill came mid-delivery
    with stack.database.transaction() as session:
        kept = {rid: outbound_events.recent(session, refund=rid, limit=100)[::-1] for rid in ids}
    seen: list[str] = []
    for request in got.received:  # what a receiver that dedupes by webhook-id keeps
        if request.headers["webhook-id"] not in seen:
            seen.append(request.headers["webhook-id"])
    for request_id, events in kept.items():
        in_order = [event.event_id for event in events]
        types = [event.event_type for event in events]
        assert types[0] == "refund.received" and "refund.succeeded" in types
        assert [event_id for event_id in seen if event_id in in_order] == in_order, request_id
    assert sorted(seen) == sorted(
        event_id for events in kept.values() for event_id in (e.event_id for e in events)
    )
    bodies = {json.loads(r.body)["id"] for r in got.received}
    assert bodies == set(seen)
