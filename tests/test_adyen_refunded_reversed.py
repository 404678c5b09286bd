"""Adyen's REFUNDED_REVERSED through the running product: the refunded money came back to the merchant's
bank account, the customer was not paid, so a refund that had succeeded is failed and its books reversed,
once, by the same late-failure path as REFUND_FAILED (tests/test_late_failures.py)."""

from __future__ import annotations

from adapters.db import audit, ledger
from sandbox.adyen.control import AdyenSandboxControl
from tests.conftest import Stack
from tests.flows import known_adyen_payment, submit, wait_for_status
from tests.helpers import eventually, refund_body, unique


async def test_a_refunded_reversed_fails_a_succeeded_refund_and_reverses_its_books_once(
    stack: Stack, adyen: AdyenSandboxControl
) -> None:
    reference = await known_adyen_payment(stack, adyen, 6_000)
    request_id = unique("reversed-adyen")
    assert (
        await submit(stack, refund_body(request_id, reference, amount=1_500, provider="adyen"))
    ).status_code == 202
    view = await wait_for_status(stack, request_id, {"succeeded"})

    adyen.reverse_refund_late(view["psp_refund_id"], reason="Refunded amount returned: account closed")
    failed = await wait_for_status(stack, request_id, {"failed"})
    assert failed["failure_code"] == "psp_declined"

    async def reversals() -> tuple[int, dict[tuple[str, str], int]]:
        with stack.database.transaction() as session:
            steps = [entry.step for entry in audit.trail(session, request_id)]
            return steps.count("late_failure_reversed"), ledger.balances(session, request_id)

    assert await eventually(reversals, lambda found: found[0] >= 1) == (1, {})
