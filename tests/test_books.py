"""The books of a refund end to end: its allocation over lines, tax and shipping, the ledger accounts
it lands in, what `status` and `audit` show."""

from __future__ import annotations

import json

from adapters.db import ledger
from sandbox.stripe.control import SandboxControl
from tests.conftest import Stack
from tests.flows import FINAL, cli, submit, wait_for_status
from tests.helpers import refund_body, unique

ITEMS = [
    {"sku": "SHIRT", "quantity": 2, "unit_amount": 2_000, "tax_amount": 760, "restock": True},
    {"sku": "CAP", "quantity": 1, "unit_amount": 1_500, "tax_amount": 285, "restock": False},
]


async def test_a_partial_refund_is_allocated_and_booked_by_kind(
    stack: Stack, sandbox: SandboxControl
) -> None:
    payment = sandbox.seed_stripe_payment(amount=7_035, currency="EUR")
    request_id = unique("alloc")
    body = refund_body(request_id, payment, amount=3_000, items=ITEMS, shipping_amount=490)
    assert (await submit(stack, body)).status_code == 202
    view = await wait_for_status(stack, request_id, FINAL)
    assert view["status"] == "succeeded"

    # full_return policy (the default): 30.00 of 70.35 refunds no shipping, so 30.00 is shared by
    # 40.00, 7.60, 15.00 and 2.85: 1833.46, 348.35, 687.55, 130.63 floor to 29.98; the two leftover
    # cents go to the largest fractions (.63, .55)
    allocation = view["allocation"]
    assert [(line["sku"], line["goods"], line["tax"]) for line in allocation["lines"]] == [
        ("SHIRT", 1_833, 348),
        ("CAP", 688, 131),
    ]
    assert (allocation["shipping"], allocation["unallocated"]) == (0, 0)

    merchant = stack.settings.merchant_id
    with stack.database.transaction() as session:
        assert ledger.balances(session, request_id) == {
            (f"{merchant}:refund_contra_revenue:EUR", "EUR"): 1_833 + 688,
            (f"{merchant}:sales_tax_payable:EUR", "EUR"): 348 + 131,
            (f"{merchant}:psp_receivable:stripe:EUR", "EUR"): -3_000,
        }
        assert ledger.balances(session, request_id, pending=True) == {}

    shown = await cli(stack, "status", request_id)
    assert shown.returncode == 0, shown.stderr
    assert "allocation (EUR)" in shown.stdout and "SHIRT x2  goods 18.33  tax 3.48" in shown.stdout


async def test_a_full_refund_gives_back_shipping_under_the_full_return_policy(
    stack: Stack, sandbox: SandboxControl
) -> None:
    payment = sandbox.seed_stripe_payment(amount=7_035, currency="EUR")
    request_id = unique("full")
    assert (
        await submit(stack, refund_body(request_id, payment, items=ITEMS, shipping_amount=490))
    ).is_success
    view = await wait_for_status(stack, request_id, FINAL)
    assert view["amount"]["value"] == 7_035
    assert (view["allocation"]["shipping"], view["allocation"]["unallocated"]) == (490, 0)
    with stack.database.transaction() as session:
        shipping = f"{stack.settings.merchant_id}:shipping_contra_revenue:EUR"
        assert ledger.balances(session, request_id)[(shipping, "EUR")] == 490


async def test_refunds_audit_prints_the_trail_from_the_database(
    stack: Stack, sandbox: SandboxControl
) -> None:
    payment = sandbox.seed_stripe_payment(amount=1_000, currency="EUR")
    request_id = unique("audit")
    await submit(stack, refund_body(request_id, payment, amount=400))
    view = await wait_for_status(stack, request_id, FINAL)

    printed = await cli(stack, "audit", request_id, "--json")
    assert printed.returncode == 0, printed.stderr
    trail = json.loads(printed.stdout)
    assert [row["step"] for row in trail] == [row["step"] for row in view["audit"]]
    assert {"psp_refund_requested", "ledger_posted"} <= {row["step"] for row in trail}
    human = await cli(stack, "audit", request_id)
    assert "psp_refund_requested" in human.stdout

    unknown = await cli(stack, "audit", unique("nobody"))
    assert (unknown.returncode, "not_found" in unknown.stderr) == (1, True)
