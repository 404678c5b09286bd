"""Attack (final): dispute holds at the reservation step, client budgets and fraud warnings on them."""

from __future__ import annotations

import pytest

from adapters.db import holds
from adapters.db.models import PaymentHoldRow
from domain.status import Provider
from sandbox.paypal.control import PayPalSandboxControl
from tests.conftest import Stack
from tests.flows import cli, submit, wait_for_status
from tests.helpers import eventually, refund_body, unique


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
