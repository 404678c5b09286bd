"""Adyen's REFUNDED_REVERSED through the running product: the refunded money came back to the merchant's
bank account, the customer was not paid, so a refund that had succeeded is failed and its books reversed,
once, by the same late-failure path as REFUND_FAILED (tests/test_late_failures.py)."""

from __future__ import annotations

from adapters.db import audit, ledger
from sandbox.adyen.control import AdyenSandboxControl
from tests.conftest import Stack
from tests.flows import known_adyen_payment, submit, wait_for_status
from tests.helpers import eventually, refund_body, unique, workflow_completed


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


async def test_a_customer_area_refund_undone_later_is_reversed_with_its_amount(
    stack: Stack, adyen: AdyenSandboxControl
) -> None:
    """A refund made by hand at Adyen is adopted into the books from its REFUND; when Adyen later says
    REFUNDED_REVERSED, the item's amount is what lets the product take it and reverse that booking."""
    reference = await known_adyen_payment(stack, adyen, 8_000)
    psp_refund_id = adyen.dashboard_refund(reference, 1_500)
    request_id = f"external:adyen:{psp_refund_id}"
    workflow = f"refund-external-adyen-{psp_refund_id}"
    await eventually(lambda: workflow_completed(stack.client, workflow), bool)

    def books() -> tuple[list[int], list[str]]:
        with stack.database.transaction() as session:
            balances = sorted(ledger.balances(session, request_id).values())
            return balances, [entry.step for entry in audit.trail(session, request_id)]

    assert books() == ([-1_500, 1_500], ["external_refund_adopted"])
    adyen.reverse_refund_late(psp_refund_id)

    async def reversed_() -> tuple[list[int], list[str]]:
        return books()

    balances, steps = await eventually(reversed_, lambda found: "late_failure_reversed" in found[1])
    assert (balances, steps.count("late_failure_reversed")) == ([], 1)
