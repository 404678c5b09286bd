"""Returned goods: restocked only when the warehouse has them, only sellable units, once; the refund
and the restock never wait for each other."""

from __future__ import annotations

import json
from typing import Any

from adapters.db import inventory
from sandbox.stripe.control import SandboxControl
from tests.conftest import Stack
from tests.flows import FINAL, cli, refund_view, submit, wait_for_status
from tests.helpers import eventually, refund_body, signed_headers, unique, workflow_completed


def items(shirt: str, cap: str) -> list[dict[str, Any]]:
    return [
        {"sku": shirt, "quantity": 2, "unit_amount": 2_000, "tax_amount": 0, "restock": True},
        {"sku": cap, "quantity": 1, "unit_amount": 1_000, "tax_amount": 0, "restock": False},
    ]


async def report(stack: Stack, request_id: str, receipt_id: str, *lines: tuple[str, int, int]) -> Any:
    body = json.dumps(
        {
            "receipt_id": receipt_id,
            "lines": [
                {"sku": sku, "received": received, "sellable": sellable} for sku, received, sellable in lines
            ],
            "received_by": "dock-3",
            "request_id": request_id,
        }
    ).encode()
    return await stack.http.post(
        f"/v1/refunds/{request_id}/goods-received", content=body, headers=signed_headers(body)
    )


def stock(stack: Stack, sku: str) -> int:
    with stack.database.transaction() as session:
        return inventory.on_hand(session, stack.settings.merchant_id, sku)


async def test_goods_are_restocked_once_when_received_even_after_the_refund(
    stack: Stack, sandbox: SandboxControl
) -> None:
    shirt, cap = unique("SHIRT"), unique("CAP")
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    request_id = unique("ret")
    body = refund_body(request_id, payment, reason_code="changed_mind", items=items(shirt, cap))
    assert (await submit(stack, body)).status_code == 202

    # the refund does not wait for the goods
    view = await wait_for_status(stack, request_id, FINAL)
    assert view["status"] == "succeeded"
    assert view["returns"]["status"] == "awaiting_goods"
    assert view["returns"]["expected"] == [{"sku": shirt, "quantity": 2}]  # the cap is not restocked
    assert stock(stack, shirt) == 0

    first = await report(stack, request_id, "rcpt-1", (shirt, 1, 1))
    assert (first.status_code, first.json()["received"]) == (200, {shirt: 1})
    # accepted, not yet restocked: the answer says so rather than claim the units are back on sale
    assert (first.json()["restocked"], first.json()["restocking"]) == ({}, ["rcpt-1"])
    repeated = await report(stack, request_id, "rcpt-1", (shirt, 1, 1))
    assert (repeated.status_code, repeated.json()["received"]) == (200, {shirt: 1})
    await eventually(lambda: _stock_is(stack, shirt, 1), bool)

    refused = [
        await report(stack, request_id, "rcpt-x", (cap, 1, 1)),  # not part of the return
        await report(stack, request_id, "rcpt-y", (shirt, 2, 2)),  # more than still expected
    ]
    assert [(r.status_code, r.json()["error"]["code"]) for r in refused] == [(409, "invalid_request")] * 2

    damaged = await report(stack, request_id, "rcpt-2", (shirt, 1, 0))  # arrived broken: not sellable
    assert (damaged.status_code, damaged.json()["status"]) == (200, "received")
    await eventually(lambda: workflow_completed(stack.client, f"refund-{request_id}"), bool)

    final = await refund_view(stack, request_id)
    assert (final["returns"]["restocked"], final["returns"]["restocking"]) == ({shirt: 1}, [])
    assert stock(stack, shirt) == 1 and stock(stack, cap) == 0
    steps = [e["step"] for e in final["audit"]]
    assert steps.count("goods_restocked") == 1 and steps.count("goods_received_unsellable") == 1


async def _stock_is(stack: Stack, sku: str, expected: int) -> bool:
    return stock(stack, sku) == expected


async def test_goods_are_restocked_while_the_refund_waits_for_review(
    stack: Stack, sandbox: SandboxControl
) -> None:
    shirt, cap = unique("SHIRT"), unique("CAP")
    payment = sandbox.seed_stripe_payment(amount=500_000, currency="EUR")
    request_id = unique("ret")
    body = refund_body(
        request_id, payment, amount=150_000, reason_code="changed_mind", items=items(shirt, cap)
    )
    assert (await submit(stack, body)).status_code == 202
    await wait_for_status(stack, request_id, {"awaiting_review"})

    assert (await report(stack, request_id, "r1", (shirt, 2, 2))).status_code == 200
    await eventually(lambda: _stock_is(stack, shirt, 2), bool)
    assert (await refund_view(stack, request_id))["status"] == "awaiting_review"

    approved = await stack.http.post(
        f"/v1/refunds/{request_id}/approve", headers={"Authorization": "Bearer alice-token"}
    )
    assert approved.status_code == 200
    assert (await wait_for_status(stack, request_id, FINAL))["status"] == "succeeded"
    await eventually(lambda: workflow_completed(stack.client, f"refund-{request_id}"), bool)
    assert stock(stack, shirt) == 2


async def test_a_refund_whose_goods_do_not_come_back_expects_none(
    stack: Stack, sandbox: SandboxControl
) -> None:
    shirt, cap = unique("SHIRT"), unique("CAP")
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    request_id = unique("dmg")
    body = refund_body(request_id, payment, reason_code="damaged", items=items(shirt, cap))
    assert (await submit(stack, body)).status_code == 202
    view = await wait_for_status(stack, request_id, FINAL)
    assert view["returns"] == {
        "status": "none",
        "expected": [],
        "received": {},
        "restocked": {},
        "receipts": [],
        "restocking": [],
    }
    await eventually(lambda: workflow_completed(stack.client, f"refund-{request_id}"), bool)
    late = await report(stack, request_id, "r1", (shirt, 1, 1))
    assert (late.status_code, late.json()["error"]["code"]) == (409, "already_finished")
    assert stock(stack, shirt) == 0


async def test_unsigned_or_malformed_receipts_change_nothing(stack: Stack, sandbox: SandboxControl) -> None:
    shirt, cap = unique("SHIRT"), unique("CAP")
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    request_id = unique("ret")
    await submit(stack, refund_body(request_id, payment, reason_code="changed_mind", items=items(shirt, cap)))
    await wait_for_status(stack, request_id, FINAL)

    line = {"sku": shirt, "received": 1, "sellable": 1}
    body = json.dumps({"receipt_id": "r1", "lines": [line], "request_id": request_id}).encode()
    unsigned = await stack.http.post(f"/v1/refunds/{request_id}/goods-received", content=body)
    malformed = await stack.http.post(
        f"/v1/refunds/{request_id}/goods-received", content=b"{", headers=signed_headers(b"{")
    )
    bad_units = await report(stack, request_id, "r2", (shirt, 1, 2))  # more sellable than received
    assert [r.status_code for r in (unsigned, malformed, bad_units)] == [401, 400, 422]
    assert (await refund_view(stack, request_id))["returns"]["received"] == {}

    checked_in = await cli(
        stack, "receive", request_id, "--receipt", "r3", "--line", f"{shirt}:2:2", "--operator", "olga"
    )
    assert checked_in.returncode == 0, checked_in.stdout + checked_in.stderr
    assert "returns received" in checked_in.stdout
    # units in words (before: a Python dict, `received {'SHIRT': 2}, restocked {}`)
    assert f"received {shirt} 2; restocked " in checked_in.stdout and "{" not in checked_in.stdout
    await eventually(lambda: _stock_is(stack, shirt, 2), bool)

    async def late_receipt() -> Any:  # everything expected came back: its workflow ends
        return await cli(
            stack, "receive", request_id, "--receipt", "r4", "--line", f"{shirt}:1:1", "--operator", "olga"
        )

    late = await eventually(late_receipt, lambda done: done.returncode != 0)
    assert late.stderr.startswith("returns_closed: ") and "receipt r4 was not taken" in late.stderr, (
        late.stderr
    )


async def test_a_signed_receipt_restocks_only_the_refund_it_names(
    stack: Stack, sandbox: SandboxControl
) -> None:
    """One warehouse receipt replayed against a second refund of the same SKU restocks nothing there."""
    shirt, cap = unique("SHIRT"), unique("CAP")
    first, second = unique("ret"), unique("ret")
    for request_id in (first, second):
        payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
        body = refund_body(request_id, payment, reason_code="changed_mind", items=items(shirt, cap))
        await submit(stack, body)
        await wait_for_status(stack, request_id, FINAL)

    line = {"sku": shirt, "received": 1, "sellable": 1}
    receipt = json.dumps({"receipt_id": "dock-r1", "lines": [line], "request_id": first}).encode()
    accepted = await stack.http.post(
        f"/v1/refunds/{first}/goods-received", content=receipt, headers=signed_headers(receipt)
    )
    replayed = await stack.http.post(
        f"/v1/refunds/{second}/goods-received", content=receipt, headers=signed_headers(receipt)
    )
    unbound = json.dumps({"receipt_id": "dock-r2", "lines": [line]}).encode()
    unnamed = await stack.http.post(
        f"/v1/refunds/{second}/goods-received", content=unbound, headers=signed_headers(unbound)
    )
    assert [r.status_code for r in (accepted, replayed, unnamed)] == [200, 422, 422]
    assert replayed.json()["error"]["code"] == "invalid_request"
    await eventually(lambda: _stock_is(stack, shirt, 1), bool)
    assert (await refund_view(stack, second))["returns"]["received"] == {}

    # the warehouse resends it: answered, restocked nothing more, and the history does not grow
    events = await _history_length(stack, first)
    again = await stack.http.post(
        f"/v1/refunds/{first}/goods-received", content=receipt, headers=signed_headers(receipt)
    )
    assert (again.status_code, again.json()["received"]) == (200, {shirt: 1})
    assert await _history_length(stack, first) == events


async def _history_length(stack: Stack, request_id: str) -> int:
    handle = stack.client.get_workflow_handle(f"refund-{request_id}")
    return len([event async for event in handle.fetch_history_events()])
