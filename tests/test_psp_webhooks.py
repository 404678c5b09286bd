"""POST /webhooks/adyen and /webhooks/paypal through the running service: forged, replayed and
malformed deliveries change nothing; refunds made in the PSP's dashboard are adopted into the books."""

from __future__ import annotations

import json

from adapters.db import audit, ledger
from sandbox.adyen.control import AdyenSandboxControl
from sandbox.paypal.control import PayPalSandboxControl
from tests.conftest import Stack
from tests.deliveries import adyen_delivery, adyen_item, post
from tests.flows import known_adyen_payment, submit, wait_for_status
from tests.helpers import eventually, refund_body, unique, workflow_completed
from workers.psp_wiring.adyen import SANDBOX_ADYEN_HMAC_KEY


def books(stack: Stack, request_id: str) -> tuple[list[int], list[str]]:
    with stack.database.transaction() as session:
        balances = sorted(ledger.balances(session, request_id).values())
        steps = [entry.step for entry in audit.trail(session, request_id)]
    return balances, steps


async def test_adyen_forged_malformed_and_replayed_notifications_change_nothing(
    stack: Stack, adyen: AdyenSandboxControl
) -> None:
    reference = await known_adyen_payment(stack, adyen, 5_000)
    adyen.hold_notifications()
    request_id = unique("hook")
    assert (
        await submit(stack, refund_body(request_id, reference, amount=1_000, provider="adyen"))
    ).is_success
    view = await wait_for_status(stack, request_id, {"awaiting_confirmation"})
    ours = f"rf-{request_id}"

    forged = adyen_item(view["psp_refund_id"], ours, "00" * 32, originalReference=reference)
    unsigned = {k: v for k, v in forged.items() if k != "additionalData"}
    genuine_other = adyen_item("OTHER00000000001", ours, SANDBOX_ADYEN_HMAC_KEY)
    for body, code in [
        (adyen_delivery(forged), "signature_invalid"),
        (adyen_delivery(unsigned), "signature_missing"),
        (adyen_delivery(genuine_other, forged), "signature_invalid"),  # one bad item refuses all
        (b"{not json", "invalid_payload"),
        (b'{"notificationItems": []}', "invalid_payload"),
    ]:
        response = await post(stack, "adyen", body)
        assert (response.status_code, response.json()["error"]["code"]) == (400, code)
    assert (await wait_for_status(stack, request_id, {"awaiting_confirmation"}))["audit"] == view["audit"]

    assert adyen.release_notifications() >= 1
    done = await wait_for_status(stack, request_id, {"succeeded"})

    # Adyen signs no timestamp: a replayed genuine delivery is defended by idempotency alone.
    [notification] = [n for n in adyen.notifications(view["psp_refund_id"]) if n["event_code"] == "REFUND"]
    replay = json.dumps(notification["payload"]).encode()
    for _ in range(2):
        response = await post(stack, "adyen", replay)
        assert (response.status_code, response.text) == (200, "[accepted]")
    assert (await wait_for_status(stack, request_id, {"succeeded"}))["audit"] == done["audit"]
    assert books(stack, request_id)[0] == [-1_000, 1_000]


async def test_paypal_forged_stale_and_malformed_deliveries_change_nothing(
    stack: Stack, paypal: PayPalSandboxControl
) -> None:
    capture = paypal.seed_capture(amount="40.00", currency="EUR", refund_behavior="pending")
    request_id = unique("hook")
    assert (await submit(stack, refund_body(request_id, capture, amount=1_000, provider="paypal"))).is_success
    view = await wait_for_status(stack, request_id, {"awaiting_confirmation"})

    completed = json.dumps(
        {
            "id": unique("WH"),
            "event_type": "PAYMENT.CAPTURE.REFUNDED",
            "resource": {
                "id": view["psp_refund_id"],
                "status": "COMPLETED",
                "amount": {"value": "10.00", "currency_code": "EUR"},
                "custom_id": request_id,
            },
        }
    )
    genuine = paypal.sign(completed)
    forged_signature = {**genuine, "PAYPAL-TRANSMISSION-SIG": genuine["PAYPAL-TRANSMISSION-SIG"][::-1]}
    tampered_body = completed.replace("10.00", "40.00")
    for body, headers, code in [
        (completed, forged_signature, "signature_invalid"),
        (tampered_body, genuine, "signature_invalid"),
        (completed, paypal.sign(completed, sent_at="2026-01-01T00:00:00Z"), "signature_expired"),
        (completed, {}, "signature_missing"),
        ("{not json", paypal.sign("{not json"), "invalid_payload"),
    ]:
        response = await post(stack, "paypal", body.encode(), headers)
        assert (response.status_code, response.json()["error"]["code"]) == (400, code)
    assert (await wait_for_status(stack, request_id, {"awaiting_confirmation"}))["audit"] == view["audit"]

    paypal.settle_refund(view["psp_refund_id"])
    done = await wait_for_status(stack, request_id, {"succeeded"})
    # the same event again, freshly signed as PayPal's retries are: acknowledged, nothing twice
    again = await post(stack, "paypal", completed.encode(), paypal.sign(completed))
    assert again.status_code == 200
    assert (await wait_for_status(stack, request_id, {"succeeded"}))["audit"] == done["audit"]
    assert books(stack, request_id)[0] == [-1_000, 1_000]


async def test_an_adyen_customer_area_refund_is_adopted_once(
    stack: Stack, adyen: AdyenSandboxControl
) -> None:
    reference = await known_adyen_payment(stack, adyen, 8_000)
    psp_refund_id = adyen.dashboard_refund(reference, 1_500)
    request_id = f"external:adyen:{psp_refund_id}"

    workflow = f"refund-external-adyen-{psp_refund_id}"
    await eventually(lambda: workflow_completed(stack.client, workflow), bool)
    assert await stack.client.get_workflow_handle(workflow).result() is True
    assert books(stack, request_id) == ([-1_500, 1_500], ["external_refund_adopted"])

    [notification] = [n for n in adyen.notifications(psp_refund_id) if n["event_code"] == "REFUND"]
    response = await post(stack, "adyen", json.dumps(notification["payload"]).encode())
    assert response.status_code == 200
    await eventually(lambda: workflow_completed(stack.client, workflow), bool)
    assert books(stack, request_id) == ([-1_500, 1_500], ["external_refund_adopted"])


async def test_a_paypal_dashboard_refund_is_adopted_once(stack: Stack, paypal: PayPalSandboxControl) -> None:
    capture = paypal.seed_capture(amount="60.00", currency="EUR")
    refund = paypal.dashboard_refund(capture, "12.50")
    request_id = f"external:paypal:{refund['id']}"

    workflow = f"refund-external-paypal-{refund['id']}"
    await eventually(lambda: workflow_completed(stack.client, workflow), bool)
    assert await stack.client.get_workflow_handle(workflow).result() is True
    assert books(stack, request_id) == ([-1_250, 1_250], ["external_refund_adopted"])

    [event] = [e for e in paypal.events() if e["payload"]["resource"].get("id") == refund["id"]]
    body = json.dumps(event["payload"])
    assert (await post(stack, "paypal", body.encode(), paypal.sign(body))).status_code == 200
    await eventually(lambda: workflow_completed(stack.client, workflow), bool)
    assert books(stack, request_id) == ([-1_250, 1_250], ["external_refund_adopted"])
