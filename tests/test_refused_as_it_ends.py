"""A PSP word without proof signalled to a refund as its workflow ends (here: as the warehouse's
receipt closes its return) is still asked about and written to its trail before the run ends. The
chaos run found refunds whose refused words were taken by Temporal and never reached the trail: the
check was scheduled in the workflow's last task and dropped with it."""

from __future__ import annotations

import asyncio
import json

from temporalio.service import RPCError

from adapters.db import audit
from domain.contracts import PspRefundUpdate
from domain.status import PspRefundStatus
from sandbox.stripe.control import SandboxControl
from tests.conftest import Stack
from tests.flows import FINAL, submit, wait_for_status
from tests.helpers import refund_body, signed_headers, unique

REFUNDS = 6  # the word lands in the last task of some of them, whatever the machine's speed


async def _refund_awaiting_goods(stack: Stack, sandbox: SandboxControl) -> tuple[str, str, str]:
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    request_id, sku = unique("ends"), unique("sku")
    line = {"sku": sku, "quantity": 1, "unit_amount": 4_000, "tax_amount": 0, "restock": True}
    assert (
        await submit(stack, refund_body(request_id, payment, reason_code="changed_mind", items=[line]))
    ).is_success
    view = await wait_for_status(stack, request_id, FINAL)
    assert view["status"] == "succeeded", view
    return request_id, sku, str(view["psp_refund_id"])


async def _receipt_and_word(
    stack: Stack, request_id: str, sku: str, psp_refund_id: str, delay: float
) -> bool:
    """The receipt that ends the refund, and a forged failure a moment later; True when Temporal took
    the word (the workflow was still open)."""
    line = {"sku": sku, "received": 1, "sellable": 1}
    receipt = json.dumps(
        {"receipt_id": f"r-{request_id}", "lines": [line], "request_id": request_id}
    ).encode()
    handle = stack.client.get_workflow_handle(f"refund-{request_id}")
    forged = PspRefundUpdate(psp_refund_id=psp_refund_id, status=PspRefundStatus.FAILED)

    async def word() -> bool:
        await asyncio.sleep(delay)
        try:
            await handle.signal("psp_refund_update", forged)
        except RPCError:
            return False  # closed already: nothing to write
        return True

    taken, answer = await asyncio.gather(
        word(),
        stack.http.post(
            f"/v1/refunds/{request_id}/goods-received", content=receipt, headers=signed_headers(receipt)
        ),
    )
    assert answer.status_code == 200, answer.text
    await handle.result()
    return taken


async def test_a_word_refused_as_the_refund_ends_is_on_its_trail(
    stack: Stack, sandbox: SandboxControl
) -> None:
    open_refunds = [await _refund_awaiting_goods(stack, sandbox) for _ in range(REFUNDS)]
    taken = await asyncio.gather(
        *(
            _receipt_and_word(stack, request_id, sku, psp_refund_id, delay=index * 0.004)
            for index, (request_id, sku, psp_refund_id) in enumerate(open_refunds)
        )
    )
    assert any(taken)
    with stack.database.transaction() as session:
        for (request_id, _, psp_refund_id), took in zip(open_refunds, taken, strict=True):
            refused = [
                entry
                for entry in audit.trail(session, request_id)
                if entry.step == "psp_update_unproven" and entry.detail.get("psp_refund_id") == psp_refund_id
            ]
            assert bool(refused) == took, (request_id, took)
