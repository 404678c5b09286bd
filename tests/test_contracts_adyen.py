"""Our Adyen sandbox and our Adyen transformers, held to Adyen's published contract.

The sandbox's Checkout answers and every notification it sends are validated against Adyen's OpenAPI
schemas (Checkout v72, Webhooks v1: tests/contracts/SOURCES.md); the transformers are fed the example
notifications Adyen publishes with those schemas.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from adapters.psp import adyen_transformers as tf
from domain.money import Money
from domain.status import ErrorCode, PaymentState, PspRefundStatus
from sandbox.adyen.control import AdyenSandboxControl
from tests.contracts.validation import assert_response, assert_webhook, example, spec
from tests.fixtures.adyen import (  # noqa: F401  (fixtures, used by name)
    ADYEN_API_KEY,
    ADYEN_MERCHANT,
    AdyenStack,
    fixture_adyen_control,
    fixture_adyen_receiver,
    fixture_adyen_stack,
    items,
)
from tests.fixtures.sandbox import eventually, unique

MODIFICATIONS = "POST /payments/{paymentPspReference}/"


@pytest.fixture(name="checkout", scope="module")
def fixture_checkout(adyen_stack: AdyenStack) -> Iterator[httpx.Client]:
    base = f"{adyen_stack.server.url}/checkout/v72"
    with httpx.Client(base_url=base, headers={"x-api-key": ADYEN_API_KEY}) as client:
        yield client


def _modify(checkout: httpx.Client, payment: str, operation: str, body: dict[str, Any], status: int) -> Any:
    response = checkout.post(
        f"/payments/{payment}/{operation}", json=body, headers={"Idempotency-Key": unique("k")}
    )
    assert response.status_code == status, response.text
    assert_response("adyen", MODIFICATIONS + operation, status, response.json())
    return response.json()


# the sandbox's answers and notifications --------------------------------------------------------


def test_modification_answers_are_published(
    checkout: httpx.Client, adyen_control: AdyenSandboxControl
) -> None:
    captured = adyen_control.seed_payment(amount=5_000, currency="EUR")
    authorised = adyen_control.seed_payment(amount=5_000, currency="EUR", captured=False)
    refund = {
        "merchantAccount": ADYEN_MERCHANT,
        "amount": {"value": 1_000, "currency": "EUR"},
        "reference": "r-1",
    }
    assert _modify(checkout, captured, "refunds", refund, 201)["status"] == "received"
    too_much = {**refund, "amount": {"value": 99_000, "currency": "EUR"}}
    _modify(checkout, captured, "refunds", too_much, 201)  # refused later, by notification
    _modify(checkout, authorised, "cancels", {"merchantAccount": ADYEN_MERCHANT, "reference": "c-1"}, 201)
    _modify(checkout, captured, "reversals", {"merchantAccount": ADYEN_MERCHANT, "reference": "v-1"}, 201)

    _modify(checkout, "NOSUCHPAYMENT000", "refunds", refund, 422)
    _modify(checkout, captured, "refunds", {**refund, "amount": {"value": -1, "currency": "EUR"}}, 422)
    _modify(checkout, captured, "refunds", {**refund, "merchantAccount": "Someone"}, 403)
    unauthorised = checkout.post(f"/payments/{captured}/refunds", json=refund, headers={"x-api-key": "wrong"})
    assert unauthorised.status_code == 401
    assert_response("adyen", MODIFICATIONS + "refunds", 401, unauthorised.json())


def test_every_notification_the_sandbox_sends_is_published(
    checkout: httpx.Client, adyen_control: AdyenSandboxControl, adyen_stack: AdyenStack
) -> None:
    payment = adyen_control.seed_payment(amount=10_000, currency="EUR")
    authorised = adyen_control.seed_payment(amount=3_000, currency="EUR", captured=False)
    refund = {
        "merchantAccount": ADYEN_MERCHANT,
        "amount": {"value": 1_000, "currency": "EUR"},
        "reference": "r-1",
    }
    first = _modify(checkout, payment, "refunds", refund, 201)["pspReference"]
    second = _modify(checkout, payment, "refunds", {**refund, "reference": "r-2"}, 201)["pspReference"]
    _modify(checkout, payment, "refunds", {**refund, "amount": {"value": 99_000, "currency": "EUR"}}, 201)
    _modify(checkout, authorised, "cancels", {"merchantAccount": ADYEN_MERCHANT}, 201)
    adyen_control.dashboard_refund(payment, 500)
    adyen_control.fail_refund_late(first)
    adyen_control.reverse_refund_late(second)
    adyen_control.chargeback(payment)
    adyen_control.fraud_notification(payment)
    _modify(checkout, payment, "reversals", {"merchantAccount": ADYEN_MERCHANT}, 201)
    expected = {
        "AUTHORISATION",
        "CAPTURE",
        "REFUND",
        "REFUND_FAILED",
        "REFUNDED_REVERSED",
        "CANCELLATION",
        "CANCEL_OR_REFUND",
        "NOTIFICATION_OF_CHARGEBACK",
        "NOTIFICATION_OF_FRAUD",
    }

    def sent() -> dict[str, list[dict[str, Any]]]:
        bodies: dict[str, list[dict[str, Any]]] = {}
        for reference in (payment, authorised):
            for delivery in adyen_stack.receiver.matching(reference):
                for item in items(delivery):
                    bodies.setdefault(item["eventCode"], []).append(json.loads(delivery.body))
        return bodies

    bodies = eventually(lambda: (found := sent()).keys() >= expected and found)
    for code, deliveries in bodies.items():
        for body in deliveries:
            assert_webhook("adyen", code, body)


def test_adyens_own_examples_fit_the_subset() -> None:
    """The subset and our reading of it accept what Adyen itself publishes."""
    for code in spec("adyen")["x-webhooks"]:
        assert_webhook("adyen", code, example("adyen", code))


# Adyen's own examples through our transformers ----------------------------------------------------


def _item(code: str, **fields: Any) -> dict[str, Any]:
    item: dict[str, Any] = example("adyen", code)["notificationItems"][0]["NotificationRequestItem"]
    return {**item, **fields}


def test_refund_outcomes_as_adyen_sends_them() -> None:
    refused = _item("REFUND")  # Adyen's example: refused, the payment was never captured
    event = tf.classify_item(refused)
    assert (event.kind, event.request_id, event.payment_reference) == (
        "refund_update",
        refused["merchantReference"],
        refused["originalReference"],
    )
    assert event.update is not None
    assert (event.update.psp_refund_id, event.update.status) == (
        refused["pspReference"],
        PspRefundStatus.FAILED,
    )
    assert (event.update.failure_code, event.update.failure_message) == (
        ErrorCode.PSP_DECLINED,
        refused["reason"],
    )

    done = tf.classify_item(_item("REFUND", success="true", reason=""))
    assert done.update is not None
    assert (done.update.status, done.update.amount) == (
        PspRefundStatus.SUCCEEDED,
        Money(value=1_000, currency="EUR"),
    )
    for code in ("CANCELLATION", "CANCEL_OR_REFUND"):
        event = tf.classify_item(_item(code))
        assert event.update is not None
        assert (event.kind, event.update.status) == ("refund_update", PspRefundStatus.SUCCEEDED)
        assert event.payment_reference == _item(code)["originalReference"]


@pytest.mark.parametrize("code", ["REFUND_FAILED", "REFUNDED_REVERSED"])
def test_a_refund_undone_after_success_as_adyen_reports_it(code: str) -> None:
    """REFUND_FAILED (the scheme rejected it) and REFUNDED_REVERSED (the money came back to the merchant's
    bank account): the customer was not paid, so the refund failed, with its amount for the books."""
    item = _item(code)
    event = tf.classify_item(item)
    assert (event.kind, event.raw_type, event.request_id) == (
        "refund_update",
        code,
        item["merchantReference"],
    )
    assert event.update is not None
    # pspReference is the refund's (the REFUND's own), originalReference the payment's
    assert (event.update.psp_refund_id, event.payment_reference) == (
        item["pspReference"],
        item["originalReference"],
    )
    assert (event.update.status, event.update.failure_code) == (
        PspRefundStatus.FAILED,
        ErrorCode.PSP_DECLINED,
    )
    assert (event.update.amount, event.update.failure_message) == (
        Money(value=1_000, currency="EUR"),
        item["reason"],
    )
    assert event.event_id == f"adyen:{item['pspReference']}:{code}:true"


def test_payments_chargebacks_and_fraud_as_adyen_sends_them() -> None:
    authorisation = _item("AUTHORISATION")
    event = tf.classify_item(authorisation)
    assert event.payment is not None
    assert (event.kind, event.payment_reference, event.payment.state) == (
        "payment_update",
        authorisation["pspReference"],
        PaymentState.AUTHORIZED,
    )
    capture = _item("CAPTURE")
    event = tf.classify_item(capture)
    assert event.payment is not None  # a capture's pspReference is its own; the payment's is the original
    assert (event.payment_reference, event.payment.state) == (
        capture["originalReference"],
        PaymentState.CAPTURED,
    )
    for code in ("CHARGEBACK", "NOTIFICATION_OF_CHARGEBACK"):
        event = tf.classify_item(_item(code))
        assert (event.kind, event.payment_reference) == ("dispute_opened", _item(code)["originalReference"])

    fraud = _item("NOTIFICATION_OF_FRAUD")
    event = tf.classify_item(fraud)
    assert event.warning is not None
    assert (event.kind, event.payment_reference) == ("fraud_warning", fraud["originalReference"])
    assert (event.warning.warning_id, event.warning.fraud_type) == (fraud["pspReference"], fraud["reason"])
    assert event.warning.amount == Money(value=1_000, currency="EUR")
    assert event.detail["scheme_reason_code"] == fraud["additionalData"]["nofReasonCode"]
