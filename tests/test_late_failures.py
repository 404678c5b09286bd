"""A PSP that fails a refund after saying it succeeded: the books are reversed and ops see it, once,
whether the refund's workflow is still open (returned goods to come) or has ended."""

from __future__ import annotations

from typing import Any

from temporalio.client import WorkflowExecutionStatus

from adapters.db import audit, ledger
from domain.naming import SA_STATUS
from sandbox.adyen.control import AdyenSandboxControl
from sandbox.stripe.control import SandboxControl
from tests.conftest import Stack
from tests.deliveries import deliver, refund_event
from tests.flows import cli, known_adyen_payment, submit, wait_for_status
from tests.helpers import eventually, refund_body, unique
from workers.psp_wiring.stripe import SANDBOX_STRIPE_WEBHOOK_SECRET
from workflows.refund import RefundWorkflow


def _returned_item() -> dict[str, Any]:
    return {"sku": unique("SKU"), "quantity": 1, "unit_amount": 1_500, "tax_amount": 0, "restock": True}


async def _succeeded_awaiting_goods(stack: Stack, body: bytes, request_id: str) -> dict[str, Any]:
    assert (await submit(stack, body)).status_code == 202
    view = await wait_for_status(stack, request_id, {"succeeded"})
    assert view["returns"]["status"] == "awaiting_goods"
    handle = stack.client.get_workflow_handle(f"refund-{request_id}")
    description = await handle.describe()
    assert description.status is WorkflowExecutionStatus.RUNNING  # still open: goods to come back
    # and the Temporal UI already says so, not `refunding` until the goods arrive
    described = await eventually(
        handle.describe, lambda d: d.typed_search_attributes.get(SA_STATUS) == "succeeded"
    )
    assert described.status is WorkflowExecutionStatus.RUNNING
    return view


def _reversals(stack: Stack, request_id: str) -> tuple[int, dict[tuple[str, str], int]]:
    with stack.database.transaction() as session:
        steps = [e.step for e in audit.trail(session, request_id)]
        return steps.count("late_failure_reversed"), ledger.balances(session, request_id)


async def test_a_stripe_failure_after_success_reverses_an_open_refund_once(
    stack: Stack, sandbox: SandboxControl
) -> None:
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    request_id = unique("late-open")
    body = refund_body(
        request_id, payment, amount=1_500, reason_code="changed_mind", items=[_returned_item()]
    )
    view = await _succeeded_awaiting_goods(stack, body, request_id)

    sandbox.fail_stripe_refund_late(view["psp_refund_id"])  # the PSP itself fails it, and says so
    failure = refund_event(request_id, view["psp_refund_id"], "failed")
    for _ in range(2):  # redelivered: still one reversal
        assert (await deliver(stack, failure, SANDBOX_STRIPE_WEBHOOK_SECRET))[0] == 200

    failed = await wait_for_status(stack, request_id, {"failed"})
    assert failed["failure_code"] == "psp_declined"
    state = await stack.client.get_workflow_handle(f"refund-{request_id}").query(RefundWorkflow.state)
    assert state.status.value == "failed"  # the workflow itself says so, not only the database
    assert _reversals(stack, request_id) == (1, {})
    listing = await eventually(lambda: _attention(stack), lambda out: request_id in out)
    assert "failed_after_success" in listing


async def test_an_adyen_refund_failed_after_success_reverses_an_open_refund(
    stack: Stack, adyen: AdyenSandboxControl
) -> None:
    reference = await known_adyen_payment(stack, adyen, 6_000)
    request_id = unique("late-adyen")
    body = refund_body(
        request_id,
        reference,
        amount=1_500,
        provider="adyen",
        reason_code="changed_mind",
        items=[_returned_item()],
    )
    view = await _succeeded_awaiting_goods(stack, body, request_id)

    adyen.fail_refund_late(view["psp_refund_id"])

    await wait_for_status(stack, request_id, {"failed"})
    assert _reversals(stack, request_id) == (1, {})


async def _attention(stack: Stack) -> str:
    return (await cli(stack, "attention")).stdout
