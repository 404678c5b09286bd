"""Waiting for the PSP's confirmation: webhook first, polling when the webhook never comes, ops at the
deadline. The week-long deadline runs on Temporal's time-skipping server, never on a real clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from adapters.db import audit
from domain.contracts import RefundPolicy, RefundState, RetryInput
from sandbox.stripe.control import SandboxControl
from tests.conftest import Stack, starter_for, worker_for
from tests.helpers import eventually, refund_body, signed_headers, signed_input, unique
from workflows.refund import RefundWorkflow


@pytest.fixture
def webhooks_lost(stack: Stack, sandbox: SandboxControl) -> Iterator[None]:
    """The PSP's webhooks never arrive (misconfigured endpoint, outage on their side)."""
    sandbox.set_stripe_webhook_url(None)
    yield
    sandbox.set_stripe_webhook_url(f"{stack.base_url}/webhooks/stripe")


async def status_of(handle: WorkflowHandle[Any, RefundState]) -> str:
    return (await handle.query(RefundWorkflow.state)).status.value


async def test_polling_confirms_when_the_webhook_never_comes(
    stack: Stack, sandbox: SandboxControl, webhooks_lost: None
) -> None:
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR", refund_behavior="pending")
    request_id = unique("poll")
    handle = stack.client.get_workflow_handle_for(RefundWorkflow.run, f"refund-{request_id}")

    async with (
        starter_for(stack, confirmation_poll_seconds=1) as (settings, http),
        worker_for(stack, settings),
    ):
        body = refund_body(request_id, payment, amount=1_000)
        assert (
            await http.post("/v1/refund-requests", content=body, headers=signed_headers(body))
        ).status_code == 202
        await eventually(lambda: status_of(handle), lambda s: s == "awaiting_confirmation")
        [refund] = sandbox.stripe_refunds(payment)
        sandbox.settle_stripe_refund(refund["id"], "succeeded")
        state = await handle.result()

    assert state.status.value == "succeeded"
    with stack.database.transaction() as session:
        confirmed = [e for e in audit.trail(session, request_id) if e.step == "psp_confirmed"]
    assert [e.detail["psp_event_id"] for e in confirmed] == ["poll"]


async def test_an_unconfirmed_refund_goes_to_ops_after_the_deadline_then_retries(
    stack: Stack, sandbox: SandboxControl, webhooks_lost: None, skipping_env: WorkflowEnvironment
) -> None:
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR", refund_behavior="pending")
    request_id = unique("deadline")
    policy = RefundPolicy(confirmation_poll_seconds=60, confirmation_deadline_seconds=7 * 24 * 3600)
    side = stack.settings.model_copy(update={"task_queue": f"skip-{request_id}"})

    async with worker_for(stack, side, client=skipping_env.client):
        handle = await skipping_env.client.start_workflow(
            RefundWorkflow.run,
            signed_input(request_id, payment, 1_000, policy),
            id=f"refund-{request_id}",
            task_queue=side.task_queue,
        )
        await eventually(lambda: status_of(handle), lambda s: s == "awaiting_confirmation")
        await skipping_env.sleep(timedelta(days=7, hours=1))
        await eventually(lambda: status_of(handle), lambda s: s == "needs_attention")
        state = await handle.query(RefundWorkflow.state)
        assert state.failure_code is not None and state.failure_code.value == "confirmation_timeout"

        await handle.execute_update(RefundWorkflow.retry, RetryInput(operator="carol"))
        [refund] = sandbox.stripe_refunds(payment)
        sandbox.settle_stripe_refund(refund["id"], "succeeded")
        final = await handle.result()

    assert final.status.value == "succeeded"
    assert len(sandbox.stripe_refunds(payment)) == 1


async def test_goods_never_returned_close_the_return_at_its_deadline(
    stack: Stack, sandbox: SandboxControl, skipping_env: WorkflowEnvironment
) -> None:
    """The refund is done at once; the return stays open for 90 days of skipped time, then closes."""
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    request_id = unique("noreturn")
    item = {"sku": unique("SKU"), "quantity": 1, "unit_amount": 1_000, "tax_amount": 0, "restock": True}
    side = stack.settings.model_copy(update={"task_queue": f"skip-{request_id}"})
    workflow_input = signed_input(
        request_id, payment, 1_000, RefundPolicy(), reason_code="changed_mind", items=[item]
    )

    async with worker_for(stack, side, client=skipping_env.client):
        handle = await skipping_env.client.start_workflow(
            RefundWorkflow.run, workflow_input, id=f"refund-{request_id}", task_queue=side.task_queue
        )
        await eventually(lambda: status_of(handle), lambda s: s == "succeeded")
        assert (await handle.query(RefundWorkflow.state)).returns.status.value == "awaiting_goods"
        await skipping_env.sleep(timedelta(days=91))
        final = await handle.result()

    assert (final.status.value, final.returns.status.value, final.returns.restocked) == (
        "succeeded",
        "not_received",
        {},
    )
    with stack.database.transaction() as session:
        assert "returns_not_received" in [e.step for e in audit.trail(session, request_id)]
