"""Tracing: one refund's spans across the service, the workflow and its activities."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor

from domain.naming import Activity
from sandbox.stripe.control import SandboxControl
from tests.conftest import Stack, starter_for, worker_for
from tests.helpers import refund_body, signed_headers, unique
from workers.tracing import tracing_interceptors
from workflows.refund import RefundWorkflow


def test_tracing_is_off_unless_configured(stack: Stack) -> None:
    assert tracing_interceptors(stack.settings) == []


async def test_a_refund_is_one_trace_from_request_to_psp_call(stack: Stack, sandbox: SandboxControl) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    config = stack.client.config()
    config["interceptors"] = [TracingInterceptor(provider.get_tracer("refunds-test"))]
    client = Client(**config)
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    request_id = unique("traced")

    async with starter_for(stack, client) as (settings, http), worker_for(stack, settings, client=client):
        body = refund_body(request_id, payment, amount=800)
        assert (await http.post("/v1/refund-requests", content=body, headers=signed_headers(body))).is_success
        state = await client.get_workflow_handle_for(RefundWorkflow.run, f"refund-{request_id}").result()

    assert state.status.value == "succeeded"
    spans = exporter.get_finished_spans()
    names = {span.name for span in spans}
    assert {
        "StartWorkflow:RefundWorkflow",
        "RunWorkflow:RefundWorkflow",
        f"RunActivity:{Activity.REFUND}",
    } <= names
    assert len({span.context.trace_id for span in spans if "RefundWorkflow" in span.name}) == 1
