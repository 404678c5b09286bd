"""POST /webhooks/stripe: only Stripe-signed deliveries reach a workflow."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import stripe
from temporalio.api.enums.v1 import EventType

from adapters.db import audit, ledger
from adapters.db.models import ReservationRow
from sandbox.stripe.control import SandboxControl
from tests.conftest import Stack, starter_for
from tests.deliveries import deliver, refund_event
from tests.flows import FINAL, cli, refund_through_pipeline, refund_view, submit, wait_for_status
from tests.helpers import eventually, refund_body, unique, workflow_completed
from workers.psp_wiring.stripe import SANDBOX_STRIPE_WEBHOOK_SECRET


async def test_forged_and_stale_deliveries_change_nothing(stack: Stack, sandbox: SandboxControl) -> None:
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR", refund_behavior="pending")
    request_id = unique("hook")
    await submit(stack, refund_body(request_id, payment, amount=1_000))
    view = await wait_for_status(stack, request_id, {"awaiting_confirmation"})
    forged = refund_event(request_id, view["psp_refund_id"], "succeeded")

    wrong_secret = await deliver(stack, forged, "whsec_attacker")
    stale = await deliver(stack, forged, SANDBOX_STRIPE_WEBHOOK_SECRET, at=int(time.time()) - 3600)
    unsigned = await stack.http.post("/webhooks/stripe", content=forged)

    assert wrong_secret == (
        400,
        {"error": {"code": "signature_invalid", "message": wrong_secret[1]["error"]["message"]}},
    )
    assert stale[0] == 400 and stale[1]["error"]["code"] == "signature_expired"
    assert unsigned.status_code == 400 and unsigned.json()["error"]["code"] == "signature_missing"
    history = await stack.client.get_workflow_handle(f"refund-{request_id}").fetch_history()
    assert not [e for e in history.events if e.HasField("workflow_execution_signaled_event_attributes")]

    sandbox.settle_stripe_refund(view["psp_refund_id"], "succeeded")
    assert (await wait_for_status(stack, request_id, FINAL))["status"] == "succeeded"


async def test_signed_event_for_an_unknown_refund_is_acknowledged_and_ignored(stack: Stack) -> None:
    payload = refund_event(unique("nobody"), "re_x", "succeeded")
    header = stripe.WebhookSignature.generate_signature_header(payload, SANDBOX_STRIPE_WEBHOOK_SECRET)
    response = await stack.http.post(
        "/webhooks/stripe", content=payload, headers={"Stripe-Signature": header}
    )
    assert response.status_code == 200
    assert response.json() == {"received": True}
    assert response.headers["Refunds-Signalled"] == "0"


async def test_unconfigured_provider_webhook_is_404(stack: Stack) -> None:
    async with starter_for(stack, paypal_client_id="") as (_settings, http):
        response = await http.post("/webhooks/paypal", content=b"{}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "provider_not_configured"


def dispute_event(payment: str) -> str:
    dispute = {"id": unique("dp"), "object": "dispute", "payment_intent": payment, "reason": "fraudulent"}
    return json.dumps(
        {
            "id": unique("evt"),
            "object": "event",
            "type": "charge.dispute.created",
            "data": {"object": dispute},
        }
    )


async def test_a_disputed_payment_waits_for_ops_before_any_refund(
    stack: Stack, sandbox: SandboxControl
) -> None:
    """Refunding a disputed payment pays the customer twice: hold it until ops release it."""
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    for _ in range(2):  # a duplicate delivery changes nothing
        assert (await deliver(stack, dispute_event(payment), SANDBOX_STRIPE_WEBHOOK_SECRET))[0] == 200
    request_id = unique("disputed")
    await submit(stack, refund_body(request_id, payment, amount=1_000))

    view = await wait_for_status(stack, request_id, {"needs_attention"})
    assert view["failure_code"] == "payment_disputed"
    assert sandbox.stripe_refunds(payment) == []
    listing = await eventually(lambda: _attention(stack), lambda out: request_id in out)
    assert "payment_disputed" in listing
    held = await cli(stack, "retry", request_id, "--operator", "carol")  # the hold still blocks it
    assert held.returncode == 1 and "the payment is still held" in held.stderr, held.stderr

    async def refused_rounds() -> int:
        view = await refund_view(stack, request_id)
        if view["status"] != "needs_attention":
            return 0
        return [e["step"] for e in view["audit"]].count("validation_failed")

    await eventually(refused_rounds, lambda n: n == 2)  # validated again, still held: back to ops

    released = await cli(stack, "release-hold", "stripe", payment, "--operator", "carol")
    assert released.returncode == 0, released.stdout
    assert (await cli(stack, "retry", request_id, "--operator", "carol")).returncode == 0

    assert (await wait_for_status(stack, request_id, FINAL))["status"] == "succeeded"
    assert len(sandbox.stripe_refunds(payment)) == 1


async def test_a_refund_failing_after_success_is_reversed_in_the_books(
    stack: Stack, sandbox: SandboxControl
) -> None:
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    request_id = unique("late")
    await submit(stack, refund_body(request_id, payment, amount=1_500))
    view = await wait_for_status(stack, request_id, FINAL)
    assert view["status"] == "succeeded"

    # a failure naming our request but another PSP refund (made by hand, copying the metadata)
    # changes nothing, and does not stand in the way of the real one
    stray = refund_event(request_id, "re_not_ours", "failed")
    assert (await deliver(stack, stray, SANDBOX_STRIPE_WEBHOOK_SECRET))[0] == 200
    assert await _late_failure_done(stack, request_id, "re_not_ours") is False

    sandbox.fail_stripe_refund_late(view["psp_refund_id"])  # the PSP itself fails it, and says so
    failure = refund_event(request_id, view["psp_refund_id"], "failed")
    for _ in range(2):  # the PSP redelivers: one reversal only
        assert (await deliver(stack, failure, SANDBOX_STRIPE_WEBHOOK_SECRET))[0] == 200

    view = await wait_for_status(stack, request_id, {"failed"})
    assert view["failure_code"] == "psp_declined"
    assert request_id in await _attention(stack)
    assert [e["step"] for e in view["audit"]].count("late_failure_reversed") == 1
    await eventually(lambda: _late_failure_done(stack, request_id, view["psp_refund_id"]), bool)
    with stack.database.transaction() as session:
        assert ledger.balances(session, request_id) == {}
        reversals = [t for t in ledger.transfers(session, request_id) if ":reversal:" in t.transfer_key]
        assert len(reversals) == 2  # the goods given back and the PSP's payout, each undone once


async def _attention(stack: Stack) -> str:
    return (await cli(stack, "attention")).stdout


async def _late_failure_done(stack: Stack, request_id: str, psp_refund_id: str) -> bool:
    handle = stack.client.get_workflow_handle(f"refund-late-failure-{request_id}-{psp_refund_id}")
    return bool(await handle.result())


async def test_a_dashboard_refund_is_adopted_into_the_books_once(
    stack: Stack, sandbox: SandboxControl
) -> None:
    """Finance sees every refund: one made by hand in Stripe's dashboard is posted and audited."""
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    await refund_through_pipeline(stack, payment, amount=1_000)
    dashboard = stripe.StripeClient(stack.settings.stripe_api_key, base_addresses={"api": stack.sandbox_url})
    refund = dashboard.v1.refunds.create({"payment_intent": payment, "amount": 3_500})
    request_id = f"external:stripe:{refund.id}"

    workflow = f"refund-external-stripe-{refund.id}"
    await eventually(lambda: workflow_completed(stack.client, workflow), bool)
    assert await stack.client.get_workflow_handle(workflow).result() is True
    with stack.database.transaction() as session:
        assert sorted(ledger.balances(session, request_id).values()) == [-3_500, 3_500]
        assert [e.step for e in audit.trail(session, request_id)] == ["external_refund_adopted"]
        assert session.get(ReservationRow, request_id).state == "committed"  # type: ignore[union-attr]

    redelivered = refund_event_for(refund.id, payment, "succeeded", 3_500)
    assert (await deliver(stack, redelivered, SANDBOX_STRIPE_WEBHOOK_SECRET))[0] == 200
    await eventually(lambda: workflow_completed(stack.client, f"refund-external-stripe-{refund.id}"), bool)
    with stack.database.transaction() as session:
        assert len(ledger.transfers(session, request_id)) == 2  # goods and payout, once


def refund_event_for(refund_id: str, payment: str, status: str, amount: int) -> str:
    refund = {
        "id": refund_id,
        "object": "refund",
        "status": status,
        "amount": amount,
        "currency": "eur",
        "payment_intent": payment,
        "metadata": {},
    }
    return json.dumps(
        {"id": unique("evt"), "object": "event", "type": "refund.updated", "data": {"object": refund}}
    )


async def test_one_event_delivered_many_times_at_once_reaches_its_refund_once(
    stack: Stack, sandbox: SandboxControl
) -> None:
    """A PSP retrying a slow answer, or a storm of replays, sends one event several times at once:
    one delivery takes it and signals the refund; the others are asked to deliver again (503) or,
    once it was taken, acknowledged as replays. Before, each passed the "seen?" check before the
    first remembered it, and the refund's history took the event several times."""
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    request_id = unique("storm")
    goods = {"sku": unique("SKU"), "quantity": 1, "unit_amount": 1_500, "tax_amount": 0, "restock": True}
    body = refund_body(request_id, payment, amount=1_500, reason_code="changed_mind", items=[goods])
    assert (await submit(stack, body)).status_code == 202
    view = await wait_for_status(stack, request_id, {"succeeded"})  # open: its goods are to come
    psp_refund_id = view["psp_refund_id"]

    async def delivered() -> bool:  # the sandbox's own events of the refund are in
        mine = [e for e in sandbox.webhook_events() if psp_refund_id in json.dumps(e["payload"])]
        return bool(mine) and all(e["state"] == "delivered" for e in mine)

    await eventually(delivered, bool)
    handle = stack.client.get_workflow_handle(f"refund-{request_id}")
    before = await _signals(handle)
    event = refund_event(request_id, psp_refund_id, "succeeded")
    answers = await asyncio.gather(*(deliver(stack, event, SANDBOX_STRIPE_WEBHOOK_SECRET) for _ in range(12)))
    statuses = [status for status, _ in answers]
    assert set(statuses) <= {200, 503} and 200 in statuses, statuses
    assert await _signals(handle) == before + 1


async def _signals(handle: Any) -> int:
    return sum(
        [
            event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
            async for event in handle.fetch_history_events()
        ]
    )
