"""Attack (final): dispute holds at the reservation step, client budgets and fraud warnings on them."""

from __future__ import annotations

import pytest

from adapters.db import holds
from adapters.db.models import PaymentHoldRow
from domain.contracts import RetryInput
from domain.status import ErrorCode, Provider
from sandbox.paypal.control import PayPalSandboxControl
from sandbox.stripe.control import SandboxControl
from tests.conftest import Stack, worker_for
from tests.flows import cli, reservation_state, stuck_after_its_psp_call, submit, wait_for_status
from tests.helpers import eventually, refund_body, state_of, unique
from workflows.refund import RefundWorkflow


def _hold(stack: Stack, capture: str) -> PaymentHoldRow | None:
    with stack.database.transaction() as session:
        row = session.get(PaymentHoldRow, (Provider.PAYPAL.value, capture))
        if row is not None:
            session.expunge(row)
        return row


async def _held(stack: Stack, capture: str) -> bool:
    with stack.database.transaction() as session:
        return holds.held(session, Provider.PAYPAL, capture) is not None


@pytest.mark.parametrize("then", ["dispute", "capture_reversed"])
async def test_a_new_dispute_after_ops_released_the_last_one_holds_the_payment_again(
    stack: Stack, paypal: PayPalSandboxControl, then: str
) -> None:
    """Ops released the hold of a first dispute; a second dispute, or PayPal taking the money back,
    comes later. Refunding now pays the customer twice: the payment is held again. A late copy of
    the dispute ops released is not a new one and leaves it released."""
    capture = paypal.seed_capture(amount="45.00", currency="EUR")
    paypal.open_dispute(capture)
    await eventually(lambda: _held(stack, capture), bool)
    first = _hold(stack, capture)
    assert first is not None
    released = await cli(stack, "release-hold", "paypal", capture, "--operator", "ops-ann")
    assert released.returncode == 0, released.stdout + released.stderr
    assert not await _held(stack, capture)
    holds.open_hold(stack.database, Provider.PAYPAL, capture, first.reason)  # the same dispute, late
    assert not await _held(stack, capture)

    if then == "dispute":
        paypal.open_dispute(capture, reason="UNAUTHORISED")
    else:
        paypal.reverse_capture(capture, "10.00")
    await eventually(lambda: _held(stack, capture), bool)

    request_id = unique("held-again")
    response = await submit(stack, refund_body(request_id, capture, amount=1_000, provider="paypal"))
    assert response.status_code == 202, response.text
    view = await wait_for_status(stack, request_id, {"needs_attention"})
    assert view["failure_code"] == "payment_disputed"
    assert [r for r in paypal.refunds(capture) if r["kind"] == "refund"] == []


async def test_a_dispute_opened_while_a_refund_waits_for_ops_at_the_psp_stops_their_retry(
    stack: Stack, sandbox: SandboxControl
) -> None:
    """Approved, reserved, then the PSP call fails for good (a revoked key): the refund waits for ops,
    for days maybe. A dispute opens meanwhile; ops fix the key and retry. The PSP made no refund, so
    none is made now either: the refund waits for ops on the dispute; released, it refunds once."""
    payment = sandbox.seed_stripe_payment(amount=500_000, currency="EUR")
    request_id = unique("psp-wait-disputed")
    handle, good = await stuck_after_its_psp_call(stack, payment, request_id)
    assert reservation_state(stack, request_id) == "held"
    holds.open_hold(stack.database, Provider.STRIPE, payment, "charge.dispute.created fraudulent (evt_1)")

    async with worker_for(stack, good):  # ops rotated the key, then retry
        await handle.execute_update(RefundWorkflow.retry, RetryInput(operator="carol"))
        held = await eventually(
            lambda: state_of(handle),
            lambda s: s.failure_code is not ErrorCode.PSP_AUTH_FAILED and s.status.value != "refunding",
        )
        assert (held.status.value, held.failure_code) == ("needs_attention", ErrorCode.PAYMENT_DISPUTED)
        assert sandbox.stripe_refunds(payment) == []
        assert holds.release_hold(stack.database, Provider.STRIPE, payment, "ops-ann")
        await handle.execute_update(RefundWorkflow.retry, RetryInput(operator="carol"))
        final = await handle.result()

    assert final.status.value == "succeeded"
    assert len(sandbox.stripe_refunds(payment)) == 1
    assert reservation_state(stack, request_id) == "committed"
