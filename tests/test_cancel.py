"""`refunds cancel`: ops end a refund that waits for them before its PSP call (a dispute never
released), as cancelled, with nothing refunded and every reservation given back; a refund waiting
after its PSP call cannot be cancelled, since money may have moved there."""

from __future__ import annotations

from temporalio.client import WorkflowUpdateFailedError

from adapters.db import audit, holds, refunds
from domain.clients import Client, parse_budget
from domain.contracts import CancelInput, RefundPolicy, ReviewInput
from domain.status import ErrorCode, Provider
from sandbox.stripe.control import SandboxControl
from tests.conftest import Stack, worker_for
from tests.flows import cli, post, reservation_state, stuck_after_its_psp_call, wait_for_status
from tests.helpers import bearer, eventually, made_client, refund_body, signed_input, state_of, unique
from workflows.refund import RefundWorkflow


def _steps(stack: Stack, request_id: str) -> list[tuple[str, str, str | None]]:
    with stack.database.transaction() as session:
        return [(entry.step, entry.actor, entry.reason_code) for entry in audit.trail(session, request_id)]


async def test_a_clients_refund_held_by_a_dispute_is_cancelled_and_its_budget_given_back(
    stack: Stack, sandbox: SandboxControl
) -> None:
    client = Client(
        name=unique("agent-cancel"),
        merchant_id=stack.settings.merchant_id,
        reasons=("damaged",),
        maxima=(parse_budget("EUR:50.00"),),
        budgets=(parse_budget("EUR:100.00"),),
    )
    key = made_client(stack.database, client)
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    holds.open_hold(stack.database, Provider.STRIPE, payment, "charge.dispute.created fraudulent (evt_c1)")
    request_id = unique("cancel-disputed")
    status, _ = await post(stack, refund_body(request_id, payment, amount=2_000), bearer(key))
    assert status == 202
    waiting = await wait_for_status(stack, request_id, {"needs_attention"})
    assert waiting["failure_code"] == "payment_disputed"

    cancelled = await cli(stack, "cancel", request_id, "--reason", "chargeback lost", "--operator", "ann")
    assert cancelled.returncode == 0 and f"{request_id}: cancelled" in cancelled.stdout, cancelled.stdout

    assert sandbox.stripe_refunds(payment) == []
    assert ("cancelled", "operator:ann", "payment_disputed") in _steps(stack, request_id)
    with stack.database.transaction() as session:
        row = refunds.get(session, request_id)
        assert row is not None and row.status == "cancelled"
    standing = (await stack.http.get("/v1/client", headers=bearer(key))).json()
    assert standing["budgets"][0]["left"] == {"value": 10_000, "currency": "EUR"}  # given back
    again = await cli(stack, "cancel", request_id, "--reason", "twice", "--operator", "ann")
    assert again.returncode == 1 and "already_finished" in again.stderr, again.stderr


async def test_a_refund_approved_after_a_chargeback_is_cancelled_at_its_reservation(
    stack: Stack, sandbox: SandboxControl
) -> None:
    payment = sandbox.seed_stripe_payment(amount=500_000, currency="EUR")
    request_id = unique("cancel-at-reserve")
    settings = stack.settings.model_copy(update={"task_queue": f"cancel-{request_id}"})
    async with worker_for(stack, settings):
        handle = await stack.client.start_workflow(
            RefundWorkflow.run,
            signed_input(request_id, payment, 150_000, RefundPolicy()),
            id=f"refund-{request_id}",
            task_queue=settings.task_queue,
        )
        await eventually(lambda: state_of(handle), lambda s: s.status.value == "awaiting_review")
        holds.open_hold(stack.database, Provider.STRIPE, payment, "charge.dispute.created (evt_c2)")
        await handle.execute_update(RefundWorkflow.approve, ReviewInput(reviewer="alice"))
        await eventually(lambda: state_of(handle), lambda s: s.status.value == "needs_attention")
        await handle.execute_update(RefundWorkflow.cancel, CancelInput(operator="ann", reason="lost"))
        final = await handle.result()
    assert (final.status.value, final.failure_code) == ("cancelled", ErrorCode.PAYMENT_DISPUTED)
    assert final.failure_message == "cancelled by ann: lost"
    assert sandbox.stripe_refunds(payment) == []
    assert reservation_state(stack, request_id) is None  # refused at the hold: nothing was reserved


async def test_a_refund_waiting_after_its_psp_call_is_not_cancelled(
    stack: Stack, sandbox: SandboxControl
) -> None:
    """The PSP call failed for good (a revoked key): whether money moved is the PSP's to say, so ops
    retry (the PSP is searched first); cancelling here could leave a refund made and unbooked."""
    payment = sandbox.seed_stripe_payment(amount=500_000, currency="EUR")
    request_id = unique("cancel-after-psp")
    handle, good = await stuck_after_its_psp_call(stack, payment, request_id)
    async with worker_for(stack, good):
        try:
            await handle.execute_update(RefundWorkflow.cancel, CancelInput(operator="ann", reason="no"))
        except WorkflowUpdateFailedError as err:
            refused = str(getattr(err.cause, "message", err.cause))
        else:
            raise AssertionError("a refund waiting after its PSP call was cancelled")
        assert "money may have moved" in refused
        assert (await state_of(handle)).status.value == "needs_attention"
        await handle.terminate("test over")
    assert reservation_state(stack, request_id) == "held"  # kept until the PSP's word, never dropped


def test_cancel_input_needs_who_and_why() -> None:
    for missing in ({"operator": "ann"}, {"reason": "lost"}, {"operator": "", "reason": "lost"}):
        try:
            CancelInput.model_validate(missing)
        except ValueError:
            continue
        raise AssertionError(f"{missing} was taken")
