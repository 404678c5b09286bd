"""Our Stripe sandbox and our Stripe transformers, held to Stripe's published contract.

Every answer and webhook the sandbox sends is validated against Stripe's OpenAPI schemas (the pinned
subset, tests/contracts/SOURCES.md), read off the wire; the transformers are fed Stripe's own example
objects (its fixtures3.json), wrapped in the events we handle.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import stripe

from adapters.psp import stripe_transformers as tf
from domain.status import ErrorCode, PaymentState, PspRefundStatus
from sandbox.server import SandboxServer
from sandbox.stripe.control import SandboxControl
from tests.contracts.validation import assert_response, assert_schema, example
from tests.fixtures.sandbox import (  # noqa: F401  (fixtures, used by name)
    API_KEY,
    WEBHOOK_SECRET,
    WebhookReceiver,
    eventually,
    fixture_sandbox_control,
    fixture_stripe_sandbox,
    fixture_webhook_receiver,
    unique,
)

INTENT = "/v1/payment_intents/{intent}"


def _form(params: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Stripe's form encoding (`metadata[k]=v`, `expand[0]=x`), as the SDK sends it."""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        name = f"{prefix}[{key}]" if prefix else key
        if isinstance(value, Mapping):
            pairs += _form(value, name)
        elif isinstance(value, list):
            pairs += _form({str(i): item for i, item in enumerate(value)}, name)
        else:
            pairs.append((name, str(value).lower() if isinstance(value, bool) else str(value)))
    return pairs


class Wire:
    """Stripe's API over plain HTTP: the bytes the sandbox sends, not what an SDK makes of them."""

    def __init__(self, base: str, api_key: str = API_KEY) -> None:
        self._http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {api_key}"})

    def call(
        self, method: str, path: str, params: Mapping[str, Any] | None = None, key: str | None = None
    ) -> httpx.Response:
        encoded = urlencode(_form(params or {}))
        if method == "GET":
            return self._http.get(f"{path}?{encoded}" if encoded else path)
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if key is not None:
            headers["Idempotency-Key"] = key
        return self._http.post(path, content=encoded, headers=headers)

    def checked(
        self,
        method: str,
        path: str,
        operation: str,
        params: Mapping[str, Any] | None = None,
        *,
        status: int = 200,
        key: str | None = None,
    ) -> dict[str, Any]:
        """Call, assert the status, validate the body as `operation`'s answer; the body."""
        response = self.call(method, path, params, key)
        assert response.status_code == status, response.text
        body: dict[str, Any] = response.json()
        assert_response("stripe", f"{method} {operation}", status, body)
        return body

    def close(self) -> None:
        self._http.close()


@pytest.fixture(name="wire", scope="module")
def fixture_wire(stripe_sandbox: SandboxServer) -> Iterator[Wire]:
    wire = Wire(stripe_sandbox.url)
    yield wire
    wire.close()


# the sandbox's answers ----------------------------------------------------------------------------


def test_payment_intents_and_charges_answer_as_published(wire: Wire, sandbox_control: SandboxControl) -> None:
    paid = wire.checked(
        "POST",
        "/v1/payment_intents",
        "/v1/payment_intents",
        {"amount": 2_500, "currency": "eur", "confirm": True},
    )
    manual = {"amount": 900, "currency": "eur", "confirm": True, "capture_method": "manual"}
    held = wire.checked("POST", "/v1/payment_intents", "/v1/payment_intents", manual)
    unconfirmed = wire.checked(
        "POST", "/v1/payment_intents", "/v1/payment_intents", {"amount": 5, "currency": "eur"}
    )
    assert (paid["status"], held["status"], unconfirmed["status"]) == (
        "succeeded",
        "requires_capture",
        "requires_payment_method",
    )
    for expand in ([], ["latest_charge"], ["latest_charge.balance_transaction"]):
        wire.checked("GET", f"/v1/payment_intents/{paid['id']}", INTENT, {"expand": expand})
    wire.checked(
        "POST", f"/v1/payment_intents/{held['id']}/capture", f"{INTENT}/capture", {"amount_to_capture": 600}
    )
    other = wire.checked("POST", "/v1/payment_intents", "/v1/payment_intents", manual)
    canceled = wire.checked(
        "POST",
        f"/v1/payment_intents/{other['id']}/cancel",
        f"{INTENT}/cancel",
        {"cancellation_reason": "abandoned"},
    )
    assert canceled["status"] == "canceled"
    for charge in (paid["latest_charge"], other["latest_charge"]):
        for expand in ([], ["payment_intent"]):
            wire.checked("GET", f"/v1/charges/{charge}", "/v1/charges/{charge}", {"expand": expand})

    # settled in another currency: the balance transaction converts
    foreign = sandbox_control.seed_stripe_payment(
        amount=10_000, currency="EUR", settlement_currency="USD", exchange_rate="1.08"
    )
    expanded = wire.checked(
        "GET", f"/v1/payment_intents/{foreign}", INTENT, {"expand": ["latest_charge.balance_transaction"]}
    )
    assert expanded["latest_charge"]["balance_transaction"]["currency"] == "usd"


def test_refunds_answer_as_published(wire: Wire, sandbox_control: SandboxControl) -> None:
    payment = sandbox_control.seed_stripe_payment(amount=10_000, currency="EUR")
    metadata = {"refund_request_id": unique("r"), "key_generation": "1", "reason_code": "damaged"}
    params = {
        "payment_intent": payment,
        "amount": 1_000,
        "metadata": metadata,
        "reason": "requested_by_customer",
    }
    made = wire.checked(
        "POST", "/v1/refunds", "/v1/refunds", {**params, "expand": ["balance_transaction"]}, key=unique("k")
    )
    by_charge = wire.checked("POST", "/v1/refunds", "/v1/refunds", {"charge": made["charge"], "amount": 500})
    for expand in ([], ["charge"], ["payment_intent"], ["balance_transaction"]):
        wire.checked("GET", f"/v1/refunds/{made['id']}", "/v1/refunds/{refund}", {"expand": expand})
    listed = wire.checked("GET", "/v1/refunds", "/v1/refunds", {"payment_intent": payment, "limit": 1})
    assert listed["has_more"] is True
    wire.checked("GET", "/v1/refunds", "/v1/refunds", {"charge": by_charge["charge"]})

    pending = sandbox_control.seed_stripe_payment(amount=2_000, currency="EUR", refund_behavior="pending")
    waiting = wire.checked("POST", "/v1/refunds", "/v1/refunds", {"payment_intent": pending, "amount": 700})
    sandbox_control.settle_stripe_refund(waiting["id"], "failed", "expired_or_canceled_card")
    failed = wire.checked("GET", f"/v1/refunds/{waiting['id']}", "/v1/refunds/{refund}")
    assert (failed["status"], failed["failure_reason"]) == ("failed", "expired_or_canceled_card")


def test_errors_answer_as_published(
    wire: Wire, sandbox_control: SandboxControl, stripe_sandbox: SandboxServer
) -> None:
    payment = sandbox_control.seed_stripe_payment(amount=1_000, currency="EUR")
    refund = {"payment_intent": payment, "amount": 5_000}
    cases: list[tuple[httpx.Response, int, str | None]] = [
        (wire.call("GET", "/v1/refunds/re_missing"), 404, "resource_missing"),
        (wire.call("POST", "/v1/refunds", refund), 400, "amount_too_large"),
        (
            wire.call("POST", "/v1/refunds", {"payment_intent": payment, "colour": "red"}),
            400,
            "parameter_unknown",
        ),
        (Wire(stripe_sandbox.url, "sk_test_wrong").call("GET", "/v1/refunds"), 401, None),
    ]
    key = unique("k")
    wire.call("POST", "/v1/refunds", {"payment_intent": payment, "amount": 10}, key)
    cases.append(
        (wire.call("POST", "/v1/refunds", {"payment_intent": payment, "amount": 11}, key), 400, None)
    )
    sandbox_control.inject_fault("rate_limit")
    cases.append((wire.call("GET", "/v1/refunds"), 429, "rate_limit"))
    sandbox_control.inject_fault("error_500")
    cases.append((wire.call("GET", "/v1/refunds"), 500, None))
    for response, status, code in cases:
        assert response.status_code == status, response.text
        assert_response("stripe", "GET /v1/refunds/{refund}", status, response.json())
        assert response.json()["error"].get("code") == code


# the sandbox's webhooks -------------------------------------------------------------------------

_OBJECT_SCHEMAS = {
    stripe.Refund.OBJECT_NAME: "refund",
    stripe.Charge.OBJECT_NAME: "charge",
    stripe.Dispute.OBJECT_NAME: "dispute",
    stripe.radar.EarlyFraudWarning.OBJECT_NAME: "radar.early_fraud_warning",
}


def test_every_event_the_sandbox_sends_is_published(
    wire: Wire, sandbox_control: SandboxControl, webhook_receiver: WebhookReceiver
) -> None:
    payment = sandbox_control.seed_stripe_payment(
        amount=10_000, currency="EUR", refund_behavior="pending_then_succeeded", settle_after_ms=50
    )
    pending = wire.call("POST", "/v1/refunds", {"payment_intent": payment, "amount": 1_000}).json()
    eventually(lambda: wire.call("GET", f"/v1/refunds/{pending['id']}").json()["status"] == "succeeded")
    sandbox_control.fail_stripe_refund_late(pending["id"])
    sandbox_control.open_stripe_dispute(payment)
    warning = sandbox_control.early_fraud_warning(payment)
    sandbox_control.early_fraud_warning(payment, warning_id=warning["id"])
    expected = {
        "refund.created",
        "refund.updated",
        "refund.failed",
        "charge.refunded",
        "charge.dispute.created",
        "radar.early_fraud_warning.created",
        "radar.early_fraud_warning.updated",
    }

    def sent() -> dict[str, list[dict[str, Any]]]:
        events: dict[str, list[dict[str, Any]]] = {}
        for delivery in webhook_receiver.matching(payment):
            event = json.loads(delivery.body)
            # the SDK's own check of the signature and of the envelope
            stripe.Webhook.construct_event(
                delivery.body, delivery.headers["Stripe-Signature"], WEBHOOK_SECRET
            )
            events.setdefault(event["type"], []).append(event)
        return events

    events = eventually(lambda: (found := sent()).keys() >= expected and found)
    for event_type, copies in events.items():
        for event in copies:
            assert_schema("stripe", "event", event)
            obj = event["data"]["object"]
            assert_schema("stripe", _OBJECT_SCHEMAS[obj["object"]], obj)
            assert event_type.startswith(("refund.", "charge.", "radar."))


# Fields Stripe's current example has that the sandbox leaves out, and why.
_NOT_SENT = {
    "charge": {"refunds"},  # sent only when expanded since API version 2022-11-15
}


def test_the_sandbox_sends_every_field_stripe_sends_today(
    wire: Wire, sandbox_control: SandboxControl, webhook_receiver: WebhookReceiver
) -> None:
    """The pinned spec is from 2023 (SOURCES.md): Stripe's current example objects (fixtures3.json at
    HEAD) say which fields it has sent since. A client may read any of them."""
    payment = sandbox_control.seed_stripe_payment(
        amount=5_000, currency="EUR", settlement_currency="USD", exchange_rate="1.08"
    )
    intent = wire.call(
        "GET", f"/v1/payment_intents/{payment}", {"expand": ["latest_charge.balance_transaction"]}
    )
    refund = wire.call("POST", "/v1/refunds", {"payment_intent": payment, "amount": 100}).json()
    dispute = sandbox_control.open_stripe_dispute(payment)
    warning = sandbox_control.early_fraud_warning(payment)
    sent = {
        "payment_intent": intent.json(),
        "charge": intent.json()["latest_charge"],
        "balance_transaction": intent.json()["latest_charge"]["balance_transaction"],
        "refund": refund,
        "dispute": dispute,
        "radar.early_fraud_warning": warning,
    }
    for name, obj in sent.items():
        missing = example("stripe", name).keys() - obj.keys() - _NOT_SENT.get(name, set())
        assert not missing, f"the sandbox's {name} lacks {sorted(missing)}"
    events = eventually(lambda: webhook_receiver.matching(dispute["id"]) or None)  # [] is not yet
    event = json.loads(events[0].body)
    # the fields of Stripe's example event (a plan's: not kept in examples/)
    envelope = {
        "api_version",
        "created",
        "data",
        "id",
        "livemode",
        "object",
        "pending_webhooks",
        "request",
        "type",
    }
    assert envelope <= event.keys()
    assert event["data"]["object"] == dispute


# Stripe's own examples through our transformers ---------------------------------------------------


def _event(event_type: str, obj: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": "evt_example", "object": "event", "type": event_type, "data": {"object": dict(obj)}}


def test_an_early_fraud_warning_as_stripe_sends_it_is_taken() -> None:
    warning = example("stripe", "radar.early_fraud_warning")
    assert warning["object"] == stripe.radar.EarlyFraudWarning.OBJECT_NAME
    for event_type in ("radar.early_fraud_warning.created", "radar.early_fraud_warning.updated"):
        event = tf.classify_event(_event(event_type, warning))
        assert event.kind == "fraud_warning", event
        assert event.warning is not None
        # Stripe's example names no PaymentIntent: the charge is the payment
        assert (event.payment_reference, event.warning.warning_id) == (warning["charge"], warning["id"])
        assert (event.warning.fraud_type, event.warning.actionable) == (warning["fraud_type"], True)
    with_intent = {**warning, "payment_intent": "pi_example"}
    assert tf.classify_event(_event("radar.early_fraud_warning.created", with_intent)).payment_reference == (
        "pi_example"
    )


def test_refund_events_as_stripe_sends_them_are_classified() -> None:
    refund = example("stripe", "refund")
    amount = tf.money(refund["amount"], refund["currency"])
    for event_type in ("refund.created", "refund.updated", "refund.failed", "charge.refund.updated"):
        # Stripe's example carries no metadata of ours: a refund made in the dashboard, to adopt
        event = tf.classify_event(_event(event_type, refund))
        assert (event.kind, event.request_id, event.payment_reference) == (
            "refund_update",
            None,
            refund["charge"],
        )
        assert event.update is not None
        assert (event.update.psp_refund_id, event.update.amount) == (refund["id"], amount)
        assert event.update.status is PspRefundStatus.SUCCEEDED

    ours = {**refund, "metadata": {tf.METADATA_REQUEST_ID: "req-1"}}
    assert tf.classify_event(_event("refund.created", ours)).kind == "ignored"  # known from create
    failed = {**ours, "status": "failed", "failure_reason": "lost_or_stolen_card"}
    event = tf.classify_event(_event("refund.failed", failed))
    assert (event.kind, event.request_id) == ("refund_update", "req-1")
    assert event.update is not None
    assert (event.update.status, event.update.failure_code) == (
        PspRefundStatus.FAILED,
        ErrorCode.PSP_DECLINED,
    )
    assert event.update.failure_message == "lost_or_stolen_card"


def test_a_dispute_as_stripe_sends_it_holds_its_payment() -> None:
    dispute = example("stripe", "dispute")
    events = tf.dispute_events(_event("charge.dispute.created", dispute))
    assert events is not None
    assert [(e.kind, e.payment_reference) for e in events] == [("dispute_opened", dispute["charge"])]
    assert events[0].detail == {"reason": dispute["reason"], "dispute": dispute["id"]}
    both = tf.dispute_events(_event("charge.dispute.created", {**dispute, "payment_intent": "pi_x"}))
    assert [e.payment_reference for e in both or []] == ["pi_x", dispute["charge"]]


def test_charges_and_intents_as_stripe_sends_them_are_read() -> None:
    charge = example("stripe", "charge")
    assert tf.classify_event(_event("charge.refunded", charge)).kind == "ignored"
    # Stripe's example charge is paid but not captured: an authorisation
    assert tf.payment_from_charge(charge).state is PaymentState.AUTHORIZED
    intent = example("stripe", "payment_intent")
    assert tf.payment_from_intent(intent).state is PaymentState.OTHER  # requires_payment_method
    captured = {**intent, "status": "succeeded", "amount_received": intent["amount"], "latest_charge": None}
    record = tf.payment_from_intent(captured)
    assert (record.state, record.amount_captured, record.currency) == (
        PaymentState.CAPTURED,
        intent["amount"],
        "USD",
    )
