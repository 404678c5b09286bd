"""Ops see what the merchant's systems are owed: `/metrics` per endpoint, and a disabled endpoint in
`refunds attention`."""

from __future__ import annotations

import json
import re

from adapters.db import audit, event_endpoints
from domain.contracts import AuditEvent
from domain.outbound_events import parse_types
from tests.conftest import Stack
from tests.flows import cli
from tests.helpers import unique
from tests.test_outbound_events import T0


async def test_a_disabled_endpoint_and_what_it_is_owed_show_in_metrics_and_attention(stack: Stack) -> None:
    merchant = unique("shop")
    with stack.database.transaction() as session:
        endpoint, _ = event_endpoints.create(session, merchant, "http://127.0.0.1:9/x", parse_types("*"))
        verdict = AuditEvent(key="validate:1:verdict", step="validated", actor="system", at=T0)
        audit.record(session, f"{merchant}~r1", "pi_1", [verdict])
        event_endpoints.disable(session, endpoint.endpoint_id, "failing since 2026-12-01 12:00 UTC")
    scraped = (await stack.http.get("/metrics")).text
    labels = f'endpoint="{endpoint.endpoint_id}",merchant="{merchant}"'
    assert f"refunds_event_deliveries_owed{{{labels}}} 1.0" in scraped
    assert f"refunds_event_endpoint_enabled{{{labels}}} 0.0" in scraped
    oldest = re.search(rf"refunds_event_oldest_owed_seconds\{{{re.escape(labels)}\}} (\S+)", scraped)
    assert oldest is not None and float(oldest.group(1)) > 0  # T0 is days ago
    listed = await cli(stack, "attention", "--json")
    row = next(r for r in json.loads(listed.stdout) if r["request_id"] == endpoint.endpoint_id)
    assert row["state"] == "events_endpoint_disabled" and "1 event kept for it" in row["why"], row
