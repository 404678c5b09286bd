"""Test helpers: polling with a deadline (never sleeping for a condition), signing, bodies."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from domain import identity, signature
from domain.contracts import ReviewInput
from domain.naming import SEARCH_ATTRIBUTES
from workers.binaries import find_binary
from workers.settings import Settings

T = TypeVar("T")

INBOUND_SECRET = "test-inbound-secret"


async def eventually(
    probe: Callable[[], Awaitable[T]],
    until: Callable[[T], bool],
    *,
    timeout: float = 20.0,
    interval: float = 0.05,
) -> T:
    """Call `probe` until `until(result)` holds; fail with the last result at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if until(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last value: {result!r}")
        await asyncio.sleep(interval)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def refund_body(
    request_id: str,
    payment_reference: str,
    *,
    amount: int | None = None,
    currency: str = "EUR",
    provider: str = "stripe",
    **extra: Any,
) -> bytes:
    body: dict[str, Any] = {
        "request_id": request_id,
        "provider": provider,
        "payment_reference": payment_reference,
        "reason_code": "damaged",
        "order_id": f"order-{request_id}",
        "customer_id": f"cus-{request_id}",  # one customer per request: no velocity across tests
        **extra,
    }
    if amount is not None:
        body["amount"] = {"value": amount, "currency": currency}
    return json.dumps(body, separators=(",", ":")).encode()


def signed_headers(body: bytes, secrets: list[str] | None = None, at: int | None = None) -> dict[str, str]:
    stamp = int(time.time()) if at is None else at
    return {
        "content-type": "application/json",
        "Refund-Signature": signature.sign(secrets or [INBOUND_SECRET], stamp, body),
    }


async def workflow_completed(client: Client, workflow_id: str) -> bool:
    """False until the workflow exists and has completed (a PSP's webhook may still be on its way)."""
    try:
        description = await client.get_workflow_handle(workflow_id).describe()
    except RPCError:
        return False
    return description.status is WorkflowExecutionStatus.COMPLETED


def proven_review(
    settings: Settings, request_id: str, reviewer: str, verdict: str = "approve"
) -> ReviewInput:
    """A decision as the service makes it for a reviewer it authenticated: signed for this refund."""
    key = settings.decision_key()
    proof = identity.sign_decision(key, f"refund-{request_id}", verdict, reviewer, "")
    return ReviewInput(reviewer=reviewer, proof=proof)


@asynccontextmanager
async def fresh_temporal() -> AsyncIterator[Client]:
    """A Temporal server of its own, in memory: shutting it down is retention forgetting everything."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(find_binary("temporal")),
        search_attributes=SEARCH_ATTRIBUTES,
        data_converter=pydantic_data_converter,
        dev_server_log_level="error",
    )
    try:
        yield env.client
    finally:
        await env.shutdown()
