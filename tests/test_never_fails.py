"""A refund workflow never fails: a step that fails for good waits in `needs_attention`, where `retry`
works (or the PSP's own final word settles it), and a notification that cannot be delivered never
stops the money."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from adapters.db import audit, ledger, refunds
from domain.contracts import RefundPolicy, RefundState, RetryInput
from sandbox.stripe.control import SandboxControl
from tests.conftest import Stack, free_port, worker_for
from tests.flows import reservation_state
from tests.helpers import eventually, signed_input, state_of, unique
from workflows.refund import RefundWorkflow

REVOKED_KEY = "sk_test_revoked"


async def _waiting_for_ops(handle: WorkflowHandle[Any, RefundState], code: str) -> RefundState:
    state = await eventually(
        lambda: state_of(handle), lambda s: s.status.value == "needs_attention", timeout=30
    )
    assert state.failure_code is not None and state.failure_code.value == code
    assert (await handle.describe()).status is WorkflowExecutionStatus.RUNNING
    return state


def _steps(stack: Stack, request_id: str) -> list[str]:
    with stack.database.transaction() as session:
        return [e.step for e in audit.trail(session, request_id)]


async def test_a_key_revoked_while_polling_waits_for_ops_and_the_psps_word_books_it(
    stack: Stack, sandbox: SandboxControl
) -> None:
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR", refund_behavior="pending")
    request_id = unique("revoked-poll")
    good = stack.settings.model_copy(update={"task_queue": f"poll-{request_id}"})
    revoked = good.model_copy(update={"stripe_api_key": REVOKED_KEY})
    policy = RefundPolicy(confirmation_poll_seconds=1)

    async with worker_for(stack, good):
        handle = await stack.client.start_workflow(
            RefundWorkflow.run,
            signed_input(request_id, payment, 1_000, policy),
            id=f"refund-{request_id}",
            task_queue=good.task_queue,
        )
        await eventually(lambda: state_of(handle), lambda s: s.status.value == "awaiting_confirmation")

    async with worker_for(stack, revoked):  # the key is revoked: the poll is refused for good
        await _waiting_for_ops(handle, "psp_auth_failed")
        [refund] = sandbox.stripe_refunds(payment)
        sandbox.settle_stripe_refund(refund["id"], "succeeded")  # the PSP's webhook still arrives
        final = await handle.result()

    assert final.status.value == "succeeded"
    assert "attention_resolved" in _steps(stack, request_id)
    assert reservation_state(stack, request_id) == "committed"
    with stack.database.transaction() as session:
        row = refunds.get(session, request_id)
        assert row is not None and (row.status, row.psp_refund_id) == ("succeeded", refund["id"])
        assert ledger.balances(session, request_id)  # the payout is booked


async def test_a_revoked_key_waits_for_ops_and_their_retry_refunds_once(
    stack: Stack, sandbox: SandboxControl
) -> None:
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    request_id = unique("revoked")
    good = stack.settings.model_copy(update={"task_queue": f"revoked-{request_id}"})
    revoked = good.model_copy(update={"stripe_api_key": REVOKED_KEY})

    async with worker_for(stack, revoked):
        handle = await stack.client.start_workflow(
            RefundWorkflow.run,
            signed_input(request_id, payment, 1_000, RefundPolicy()),
            id=f"refund-{request_id}",
            task_queue=good.task_queue,
        )
        await _waiting_for_ops(handle, "psp_auth_failed")

    async with worker_for(stack, good):  # ops rotated the key, then retry
        await handle.execute_update(RefundWorkflow.retry, RetryInput(operator="carol"))
        final = await handle.result()

    assert final.status.value == "succeeded"
    assert len(sandbox.stripe_refunds(payment)) == 1
    assert "ops_retry" in _steps(stack, request_id)


async def test_an_escalation_hook_that_refuses_never_stops_the_refund(
    stack: Stack, sandbox: SandboxControl, skipping_env: WorkflowEnvironment
) -> None:
    payment = sandbox.seed_stripe_payment(amount=500_000, currency="EUR")
    request_id = unique("hook-down")
    policy = RefundPolicy(
        review_escalate_after_seconds=24 * 3600,
        review_decide_after_seconds=72 * 3600,
        on_review_deadline="approve",
    )
    nobody_listens = f"http://127.0.0.1:{free_port()}/hook"
    side = stack.settings.model_copy(
        update={"task_queue": f"skip-{request_id}", "escalation_webhook_url": nobody_listens}
    )

    async with worker_for(stack, side, client=skipping_env.client):
        handle = await skipping_env.client.start_workflow(
            RefundWorkflow.run,
            signed_input(request_id, payment, 150_000, policy),
            id=f"refund-{request_id}",
            task_queue=side.task_queue,
        )
        await eventually(lambda: state_of(handle), lambda s: s.status.value == "awaiting_review")
        await skipping_env.sleep(timedelta(hours=25))
        await eventually(lambda: state_of(handle), lambda s: s.review_escalated)
        await skipping_env.sleep(timedelta(days=3))
        final = await handle.result()

    assert final.status.value == "succeeded"
    assert len(sandbox.stripe_refunds(payment)) == 1
    steps = _steps(stack, request_id)
    assert "ops_notification_failed" in steps and "ops_notified" not in steps
