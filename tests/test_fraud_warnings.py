"""Early fraud warnings through the running product: Radar's and Adyen's warnings, sent signed by
the sandbox to the service, become refunds (or reviews, or records) as the merchant's policy says,
once whatever the redeliveries; a forged warning changes nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from adapters.db import audit
from domain.contracts import FraudWarningPolicy
from sandbox.adyen.control import AdyenSandboxControl
from sandbox.stripe.control import SandboxControl
from tests.conftest import Stack
from tests.deliveries import adyen_delivery, adyen_item, deliver, post
from tests.flows import assert_not_started, known_adyen_payment, wait_for_status
from tests.helpers import eventually, refund_body, signed_headers
from workers.settings import SANDBOX_STRIPE_WEBHOOK_SECRET

REFUND_UP_TO = FraudWarningPolicy(mode="refund", refund_up_to_major=200, review_fraud_types=("misc",))


@pytest.fixture
def refunding(stack: Stack) -> Iterator[None]:
    """The default merchant's policy refunds warnings up to 200.00 EUR (built in: it only records)."""
    policies = stack.services.policies
    merchant = stack.settings.merchant_id
    before = policies[merchant]
    policies[merchant] = before.model_copy(update={"early_fraud_warnings": REFUND_UP_TO})
    yield
    policies[merchant] = before


def trail(stack: Stack, request_id: str) -> list[audit.AuditEntry]:
    with stack.database.transaction() as session:
        return list(audit.trail(session, request_id))


async def stripe_event(sandbox: SandboxControl, warning_id: str) -> str:
    async def events() -> list[dict[str, Any]]:
        return [
            e
            for e in sandbox.webhook_events()
            if e["type"].startswith("radar.early_fraud_warning")
            and e["payload"]["data"]["object"]["id"] == warning_id
        ]

    [event] = await eventually(events, lambda found: len(found) == 1)
    return json.dumps(event["payload"])


async def test_a_stripe_warning_under_the_amount_is_refunded_once(
    stack: Stack, sandbox: SandboxControl, refunding: None
) -> None:
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    warning = sandbox.early_fraud_warning(payment)
    request_id = f"efw-stripe-{warning['id']}"

    done = await wait_for_status(stack, request_id, {"succeeded"})
    assert done["requested_by"] == f"psp:stripe:{warning['id']}"
    assert done["amount"] == {"value": 5_000, "currency": "EUR"}
    [refund] = sandbox.stripe_refunds(payment)
    assert refund["amount"] == 5_000 and refund["metadata"]["refund_request_id"] == request_id
    [taken] = [e for e in trail(stack, request_id) if e.step == "early_fraud_warning"]
    assert (taken.actor, taken.reason_code) == (f"psp:stripe:{warning['id']}", "refund")

    # the same event again, and Radar's update of the same warning: still one refund
    payload = await stripe_event(sandbox, warning["id"])
    for _ in range(2):
        status, _ = await deliver(stack, payload, SANDBOX_STRIPE_WEBHOOK_SECRET)
        assert status == 200
    sandbox.early_fraud_warning(payment, warning_id=warning["id"])

    async def updates_taken() -> int:
        return sum(e.step == "early_fraud_warning" for e in trail(stack, request_id))

    await eventually(updates_taken, lambda n: n == 2)
    assert len(sandbox.stripe_refunds(payment)) == 1
    update = trail(stack, request_id)[-1]
    assert (update.step, update.reason_code) == ("early_fraud_warning", "record")  # nothing left
    assert (await wait_for_status(stack, request_id, {"succeeded"}))["amount"] == done["amount"]

    metrics = (await stack.http.get("/metrics")).text
    assert 'refunds_early_fraud_warnings_total{outcome="refunded",source="stripe"}' in metrics


async def test_a_stripe_warning_above_the_amount_waits_for_a_human(
    stack: Stack, sandbox: SandboxControl, refunding: None
) -> None:
    payment = sandbox.seed_stripe_payment(amount=50_000, currency="EUR")
    warning = sandbox.early_fraud_warning(payment, fraud_type="card_never_received")
    request_id = f"efw-stripe-{warning['id']}"

    waiting = await wait_for_status(stack, request_id, {"awaiting_review"})
    assert waiting["requested_by"] == f"psp:stripe:{warning['id']}"
    [held] = [r for r in waiting["risk"]["reasons"] if r["code"] == "early_fraud_warning"]
    assert "above" in held["detail"] and warning["id"] in held["detail"]
    assert sandbox.stripe_refunds(payment) == []


async def test_the_built_in_policy_records_a_warning_and_starts_nothing(
    stack: Stack, sandbox: SandboxControl
) -> None:
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    warning = sandbox.early_fraud_warning(payment)
    request_id = f"efw-stripe-{warning['id']}"

    async def recorded() -> list[audit.AuditEntry]:
        return trail(stack, request_id)

    [entry] = await eventually(recorded, lambda rows: len(rows) == 1)
    assert (entry.step, entry.reason_code) == ("early_fraud_warning", "record")
    assert entry.original_reference == payment
    await assert_not_started(stack, request_id)
    assert sandbox.stripe_refunds(payment) == []


async def test_an_adyen_notification_of_fraud_is_refunded_once(
    stack: Stack, adyen: AdyenSandboxControl, refunding: None
) -> None:
    reference = await known_adyen_payment(stack, adyen, 5_000)
    adyen.fraud_notification(reference, reason="Card reported stolen")
    request_id = f"efw-adyen-{reference}"

    done = await wait_for_status(stack, request_id, {"succeeded"})
    assert done["requested_by"] == f"psp:adyen:{reference}"
    [refund] = [m for m in adyen.modifications(reference) if m["kind"] == "refund"]
    assert refund["amount"] == 5_000

    [notification] = [n for n in adyen.notifications(reference) if n["event_code"] == "NOTIFICATION_OF_FRAUD"]
    replay = json.dumps(notification["payload"]).encode()
    for _ in range(2):
        response = await post(stack, "adyen", replay)
        assert (response.status_code, response.headers["Refunds-Signalled"]) == (200, "0")
    assert len([m for m in adyen.modifications(reference) if m["kind"] == "refund"]) == 1


async def test_a_forged_warning_changes_nothing(
    stack: Stack, sandbox: SandboxControl, adyen: AdyenSandboxControl, refunding: None
) -> None:
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    forged = json.dumps(
        {
            "id": "evt_forged_efw",
            "object": "event",
            "type": "radar.early_fraud_warning.created",
            "data": {
                "object": {
                    "id": "issfr_forged",
                    "object": "early_fraud_warning",
                    "actionable": True,
                    "payment_intent": payment,
                    "fraud_type": "made_with_stolen_card",
                }
            },
        }
    )
    status, body = await deliver(stack, forged, "whsec_not_the_sandboxes")
    assert (status, body["error"]["code"]) == (400, "signature_invalid")

    reference = await known_adyen_payment(stack, adyen, 5_000)
    item = adyen_item(reference, "", "00" * 32, eventCode="NOTIFICATION_OF_FRAUD")
    response = await post(stack, "adyen", adyen_delivery(item))
    assert (response.status_code, response.json()["error"]["code"]) == (400, "signature_invalid")

    for request_id in ("efw-stripe-issfr_forged", f"efw-adyen-{reference}"):
        await assert_not_started(stack, request_id)
        assert trail(stack, request_id) == []
    assert sandbox.stripe_refunds(payment) == []


async def test_no_merchant_can_take_a_warnings_request_id_first(stack: Stack) -> None:
    """Else the warning would find "its" refund already started, and refund nothing."""
    body = refund_body("efw-stripe-issfr_1", "pi_1", amount=100)
    response = await stack.http.post("/v1/refund-requests", content=body, headers=signed_headers(body))
    assert (response.status_code, response.json()["error"]["details"][0]["loc"]) == (422, ["request_id"])
    await assert_not_started(stack, "efw-stripe-issfr_1")
