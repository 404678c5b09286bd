"""Observability: product metrics on the service's /metrics and the worker's metrics port."""

from __future__ import annotations

import httpx

from sandbox.stripe.control import SandboxControl
from tests.conftest import Stack, free_port, starter_for, worker_for
from tests.flows import large_refund_awaiting_review
from tests.helpers import eventually, refund_body, signed_headers, unique
from workers.temporal import connect, metrics_runtime
from workflows.refund import RefundWorkflow


async def test_the_worker_reports_psp_calls_outcomes_and_time_to_success(
    stack: Stack, sandbox: SandboxControl
) -> None:
    port = free_port()
    client = await connect(stack.settings, metrics_runtime(port))
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    request_id = unique("metered")
    async with starter_for(stack, client) as (settings, http), worker_for(stack, settings, client=client):
        body = refund_body(request_id, payment, amount=700)
        assert (await http.post("/v1/refund-requests", content=body, headers=signed_headers(body))).is_success
        await client.get_workflow_handle_for(RefundWorkflow.run, f"refund-{request_id}").result()

        async def scrape() -> str:
            async with httpx.AsyncClient() as scraper:
                return (await scraper.get(f"http://127.0.0.1:{port}/metrics")).text

        text = await eventually(scrape, lambda t: "refunds_time_to_success" in t)
    lines = text.splitlines()
    assert any(
        line.startswith("refunds_psp_calls") and 'outcome="ok"' in line and 'provider="stripe"' in line
        for line in lines
    )
    assert any(line.startswith("refunds_psp_call_latency") for line in lines)
    assert any(line.startswith("refunds_finished") and 'status="succeeded"' in line for line in lines)


async def test_the_service_reports_the_review_queue_depth(stack: Stack, sandbox: SandboxControl) -> None:
    await large_refund_awaiting_review(stack, sandbox)

    async def depth() -> int:
        text = (await stack.http.get("/metrics")).text
        line = next(line for line in text.splitlines() if line.startswith("refunds_review_queue_depth"))
        return int(float(line.split()[-1]))

    assert await eventually(depth, lambda waiting: waiting >= 1) >= 1
