"""Workers going away mid-refund: killed (a new worker finishes it) or stopped (it drains first);
either way the PSP refunds once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import httpx
from temporalio.api.enums.v1 import EventType, PendingActivityState

from domain.naming import Activity
from sandbox.stripe.control import SandboxControl
from tests.conftest import Stack, free_port, repo_root, starter_for, worker_for
from tests.helpers import eventually, refund_body, signed_headers, unique
from workflows.refund import RefundWorkflow

SLOW_PSP_MS = 2_500


def refunds_process(stack: Stack, command: str, task_queue: str, **env: str) -> subprocess.Popen[bytes]:
    """`refunds <command>` in a process group of its own, on the test stack's Temporal and database."""
    settings = stack.settings
    configured = {
        "REFUNDS_ENVIRONMENT": "test",
        "REFUNDS_TASK_QUEUE": task_queue,
        "REFUNDS_TEMPORAL_ADDRESS": settings.temporal_address,
        "REFUNDS_DATABASE_URL": settings.database_url,
        "REFUNDS_INBOUND_WEBHOOK_SECRET": settings.inbound_webhook_secret,
        "REFUNDS_REVIEW_SIGNING_KEY": settings.review_signing_key,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "workers.cli", command],
        env={**os.environ, **configured, **env},
        cwd=repo_root(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def worker_process(stack: Stack, task_queue: str, **env: str) -> subprocess.Popen[bytes]:
    settings = stack.settings
    return refunds_process(
        stack,
        "worker",
        task_queue,
        REFUNDS_STRIPE_API_KEY=settings.stripe_api_key,
        REFUNDS_STRIPE_API_BASE=settings.stripe_api_base,
        REFUNDS_STRIPE_WEBHOOK_SECRET=settings.stripe_webhook_secret,
        **env,
    )


async def test_killed_worker_mid_refund_is_finished_by_a_new_one(
    stack: Stack, sandbox: SandboxControl
) -> None:
    payment = sandbox.seed_stripe_payment(amount=9_000, currency="EUR")
    request_id = unique("crash")
    handle = stack.client.get_workflow_handle_for(RefundWorkflow.run, f"refund-{request_id}")

    async with starter_for(stack, psp_timeout_seconds=4) as (settings, http):
        process = worker_process(stack, settings.task_queue)
        try:
            sandbox.inject_fault(
                "slow", count=1, path_prefix="/v1/refunds", method="POST", delay_ms=SLOW_PSP_MS
            )
            body = refund_body(request_id, payment, amount=4_000)
            response = await http.post("/v1/refund-requests", content=body, headers=signed_headers(body))
            assert response.status_code == 202

            async def refund_in_flight() -> bool:
                pending = (await handle.describe()).raw_description.pending_activities
                return any(
                    a.activity_type.name == Activity.REFUND
                    and a.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
                    for a in pending
                )

            await eventually(refund_in_flight, bool, timeout=30)
        finally:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

        async with worker_for(stack, settings):
            state = await handle.result()

    assert state.status.value == "succeeded"
    refunds = sandbox.stripe_refunds(payment)
    assert len(refunds) == 1 and refunds[0]["id"] == state.psp_refund_id


async def test_a_worker_told_to_stop_lets_its_psp_call_finish_first(
    stack: Stack, sandbox: SandboxControl
) -> None:
    """SIGTERM during a deploy: the in-flight refund call completes on the stopping worker (no retry,
    no second PSP call), the process exits cleanly, and the next worker carries on."""
    payment = sandbox.seed_stripe_payment(amount=9_000, currency="EUR")
    request_id = unique("drain")
    handle = stack.client.get_workflow_handle_for(RefundWorkflow.run, f"refund-{request_id}")

    async with starter_for(stack, psp_timeout_seconds=30) as (settings, http):
        process = worker_process(stack, settings.task_queue)
        sandbox.inject_fault("slow", count=1, path_prefix="/v1/refunds", method="POST", delay_ms=SLOW_PSP_MS)
        body = refund_body(request_id, payment, amount=4_000)
        assert (await http.post("/v1/refund-requests", content=body, headers=signed_headers(body))).is_success

        async def refund_in_flight() -> bool:  # started on the worker, not only scheduled
            pending = (await handle.describe()).raw_description.pending_activities
            return any(
                a.activity_type.name == Activity.REFUND
                and a.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
                for a in pending
            )

        await eventually(refund_in_flight, bool, timeout=30)
        os.killpg(process.pid, signal.SIGTERM)
        exit_code = await asyncio.to_thread(process.wait, 60)

        async with worker_for(stack, settings):
            state = await handle.result()

    assert (exit_code, state.status.value) == (0, "succeeded")
    history = await handle.fetch_history()
    attempts = [
        e.activity_task_started_event_attributes.attempt
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    ]
    assert attempts == [1]  # finished by the stopping worker, never retried
    assert len(sandbox.stripe_refunds(payment)) == 1


async def test_a_service_told_to_stop_answers_the_request_it_is_reading_first(
    stack: Stack, sandbox: SandboxControl
) -> None:
    """SIGTERM while a refund request is half received: the service stops taking new connections,
    finishes that request (202, its workflow started) and exits cleanly; the refund goes through."""
    payment = sandbox.seed_stripe_payment(amount=9_000, currency="EUR")
    request_id = unique("stop")
    body = refund_body(request_id, payment, amount=1_000)
    port = free_port()
    async with starter_for(stack) as (settings, _):
        process = refunds_process(stack, "serve", settings.task_queue, REFUNDS_HTTP_PORT=str(port))
        try:
            await eventually(lambda: healthy(port), bool, timeout=60)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            head = [
                "POST /v1/refund-requests HTTP/1.1",
                f"Host: 127.0.0.1:{port}",
                *(f"{name}: {value}" for name, value in signed_headers(body).items()),
                f"Content-Length: {len(body)}",
                "Expect: 100-continue",  # answered once the service is reading the body
            ]
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
            await writer.drain()
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 100")

            os.killpg(process.pid, signal.SIGTERM)
            await eventually(lambda: refuses_connections(port), bool)  # no new requests taken
            writer.write(body)
            await writer.drain()
            answer = (await reader.read()).decode()
            writer.close()
            exit_code = await asyncio.to_thread(process.wait, 60)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

        async with worker_for(stack, settings):
            state = await stack.client.get_workflow_handle_for(
                RefundWorkflow.run, f"refund-{request_id}"
            ).result()

    assert answer.startswith("HTTP/1.1 202") and request_id in answer
    assert (exit_code, state.status.value) == (0, "succeeded")


async def healthy(port: int) -> bool:
    try:
        async with httpx.AsyncClient(timeout=2) as http:
            return (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
    except httpx.TransportError:
        return False


async def refuses_connections(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return True
    writer.close()
    return False
