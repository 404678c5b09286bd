"""What tests do against the running product (the session's `Stack`): submit a refund request and
wait for its status, run the CLI on the stack's settings, bring a large refund to review, learn of an
Adyen payment, read a refund's audit steps and reservation, run a reconciliation."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from adapters.db import audit
from adapters.db.models import ReservationRow
from adapters.db.payment_book import DatabasePaymentBook
from domain.contracts import RefundPolicy, RefundState, ReviewInput
from domain.status import ErrorCode, Provider
from sandbox.adyen.control import AdyenSandboxControl
from sandbox.stripe.control import SandboxControl
from tests.conftest import Stack, free_port, repo_root, worker_for
from tests.helpers import eventually, refund_body, signed_headers, signed_input, state_of, unique
from workers.settings import Settings
from workflows.refund import RefundWorkflow

FINAL = {"succeeded", "failed", "rejected", "cancelled"}


async def submit(stack: Stack, body: bytes) -> Any:
    return await stack.http.post("/v1/refund-requests", content=body, headers=signed_headers(body))


async def refund_view(stack: Stack, request_id: str) -> dict[str, Any]:
    response = await stack.http.get(f"/v1/refunds/{request_id}")
    return response.json() if response.status_code == 200 else {"status": None}


async def wait_for_status(
    stack: Stack, request_id: str, statuses: set[str], timeout: float = 30
) -> dict[str, Any]:
    return await eventually(
        lambda: refund_view(stack, request_id), lambda v: v["status"] in statuses, timeout=timeout
    )


async def refund_through_pipeline(
    stack: Stack, payment: str, amount: int | None = None, **extra: Any
) -> dict[str, Any]:
    request_id = unique("req")
    response = await submit(stack, refund_body(request_id, payment, amount=amount, **extra))
    assert response.status_code == 202, response.text
    return await wait_for_status(stack, request_id, FINAL)


def reservation_state(stack: Stack, request_id: str) -> str | None:
    with stack.database.transaction() as session:
        row = session.get(ReservationRow, request_id)
        return row.state if row else None


async def assert_not_started(stack: Stack, request_id: str) -> None:
    with pytest.raises(RPCError) as err:
        await stack.client.get_workflow_handle(f"refund-{request_id}").describe()
    assert err.value.status is RPCStatusCode.NOT_FOUND


async def post(stack: Stack, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    response = await stack.http.post("/v1/refund-requests", content=body, headers=headers)
    return response.status_code, response.json()


LARGE = 150_000  # 1,500.00 EUR: above the default 1,000.00 review threshold


def cli_env(stack: Stack, **extra: str) -> dict[str, str]:
    """The environment a CLI process runs with: the test stack's settings (Temporal, database, PSPs
    on the sandbox) and `extra`."""
    configured = {
        f"REFUNDS_{name.upper()}": str(value)
        for name, value in stack.settings.model_dump().items()
        if value is not None and not isinstance(value, (list, dict))
    }
    return {**os.environ, **configured, **extra}


async def cli(stack: Stack, *args: str, **env_overrides: str) -> subprocess.CompletedProcess[str]:
    env = cli_env(stack, COLUMNS="200", **env_overrides)
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "workers.cli", *args],
        env=env,
        cwd=repo_root(),
        capture_output=True,
        text=True,
        timeout=60,
    )


async def large_refund_awaiting_review(stack: Stack, sandbox: SandboxControl) -> tuple[str, str]:
    payment = sandbox.seed_stripe_payment(amount=200_000, currency="EUR")
    request_id = unique("big")
    response = await submit(stack, refund_body(request_id, payment, amount=LARGE))
    assert response.status_code == 202
    view = await wait_for_status(stack, request_id, {"awaiting_review"})
    assert view["risk"]["requires_review"] is True
    assert "review_threshold" in [r["code"] for r in view["risk"]["reasons"]]
    assert sandbox.stripe_refunds(payment) == []
    return request_id, payment


async def known_adyen_payment(
    stack: Stack, adyen: AdyenSandboxControl, amount: int, captured: bool = True
) -> str:
    """Adyen cannot be asked about a payment: we learn of it from its AUTHORISATION/CAPTURE notices."""
    reference = adyen.seed_payment(amount=amount, currency="EUR", captured=captured)
    book = DatabasePaymentBook(stack.database)

    async def recorded() -> object:
        return book.get(Provider.ADYEN, reference)

    await eventually(recorded, lambda p: p is not None and (not captured or p.amount_captured == amount))  # type: ignore[attr-defined]
    return reference


def steps_of(stack: Stack, request_id: str) -> list[str]:
    with stack.database.transaction() as session:
        return [entry.step for entry in audit.trail(session, request_id)]


SINCE = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d")


async def run_reconcile(
    stack: Stack, provider: str, *payments: str, report: str | None = None
) -> tuple[int, list[dict[str, str]]]:
    args = ["reconcile", "--provider", provider, "--since", SINCE, "--json"]
    if report is not None:
        args += ["--report", report]
    for payment in payments:
        args += ["--payment", payment]
    done = await cli(stack, *args)
    return done.returncode, json.loads(done.stdout) if done.stdout.strip().startswith("[") else []


@asynccontextmanager
async def mcp_over_http(stack: Stack, **env: str) -> AsyncIterator[str]:
    """`refunds mcp --http` on a free port, against the running product (or the service `env`
    names): its /mcp address, once it answers."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "workers.cli", "mcp", "--http", "--port", str(port)],
        env=cli_env(stack, **{"REFUNDS_SERVICE_URL": stack.base_url, **env}),
        cwd=str(repo_root()),
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/mcp"

    async def answering() -> bool:
        try:
            async with httpx.AsyncClient() as http:
                return (await http.post(url)).status_code == 401
        except httpx.HTTPError:
            return process.poll() is not None  # gone: fail below, not at the deadline

    try:
        await eventually(answering, bool, timeout=30)
        assert process.poll() is None, "refunds mcp --http exited"
        yield url
    finally:
        process.terminate()
        await asyncio.to_thread(process.wait, 10)


REVOKED_STRIPE_KEY = "sk_test_revoked"


async def stuck_after_its_psp_call(
    stack: Stack, payment: str, request_id: str
) -> tuple[WorkflowHandle[Any, RefundState], Settings]:
    """A 1,500.00 EUR refund reviewed, approved and reserved whose PSP call then failed for good (a
    revoked key): it waits for ops in needs_attention. Returns it and the settings of a worker with a
    good key on its queue."""
    good = stack.settings.model_copy(update={"task_queue": f"stuck-{request_id}"})
    async with worker_for(stack, good):
        handle = await stack.client.start_workflow(
            RefundWorkflow.run,
            signed_input(request_id, payment, 150_000, RefundPolicy()),
            id=f"refund-{request_id}",
            task_queue=good.task_queue,
        )
        await eventually(lambda: state_of(handle), lambda s: s.status.value == "awaiting_review")
    async with worker_for(stack, good.model_copy(update={"stripe_api_key": REVOKED_STRIPE_KEY})):
        await handle.execute_update(RefundWorkflow.approve, ReviewInput(reviewer="alice"))
        waiting = await eventually(lambda: state_of(handle), lambda s: s.status.value == "needs_attention")
        assert waiting.failure_code is ErrorCode.PSP_AUTH_FAILED
    return handle, good
