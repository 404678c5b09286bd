"""Our PayPal sandbox and our PayPal transformers, held to PayPal's published contract.

Every answer and webhook the sandbox sends is validated against PayPal's OpenAPI schemas (payments v2,
orders v2, webhooks v1, disputes v1: tests/contracts/SOURCES.md). PayPal's repository publishes no
example webhook events, so the transformers are checked the other way round: every field they read
is one PayPal publishes, and every status PayPal publishes is one they know.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from adapters.psp import paypal_transformers as tf
from domain.status import PaymentState, PspRefundStatus
from sandbox.paypal.control import PayPalSandboxControl
from tests.contracts.validation import assert_response, assert_schema, published, spec
from tests.fixtures.paypal import (  # noqa: F401  (fixtures, used by name)
    CLIENT_ID,
    CLIENT_SECRET,
    PayPalEnvironment,
    fixture_paypal_control,
    fixture_paypal_sandbox,
    fixture_paypal_webhooks,
)
from tests.fixtures.sandbox import WebhookReceiver, eventually, unique

CAPTURE = "/v2/payments/captures/{capture_id}"
AUTHORIZATION = "/v2/payments/authorizations/{authorization_id}"
REPRESENTATION = {"Prefer": "return=representation"}


@pytest.fixture(name="http")
def fixture_http(paypal_sandbox: PayPalEnvironment) -> Iterator[httpx.Client]:
    answer = httpx.post(
        f"{paypal_sandbox.url}/v1/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(CLIENT_ID, CLIENT_SECRET),
    )
    headers = {"Authorization": f"Bearer {answer.json()['access_token']}"}
    with httpx.Client(base_url=paypal_sandbox.url, headers=headers) as client:
        yield client


def checked(response: httpx.Response, operation: str, status: int) -> Any:
    assert response.status_code == status, response.text
    body = response.json()
    assert_response("paypal", operation, status, body)
    return body


SEARCH = "/v1/reporting/transactions"


# the sandbox's answers ----------------------------------------------------------------------------


def test_captures_refunds_and_orders_answer_as_published(
    http: httpx.Client, paypal_control: PayPalSandboxControl
) -> None:
    capture = paypal_control.seed_capture(amount="50.00", currency="EUR")
    checked(http.get(f"/v2/payments/captures/{capture}"), f"GET {CAPTURE}", 200)
    ours = {
        "amount": {"value": "10.00", "currency_code": "EUR"},
        "invoice_id": "req-1",
        "custom_id": "req-1",
        "note_to_payer": "Refund damaged",
    }
    headers = {**REPRESENTATION, "PayPal-Request-Id": unique("k")}
    made = checked(
        http.post(f"{CAPTURE.format(capture_id=capture)}/refund", json=ours, headers=headers),
        f"POST {CAPTURE}/refund",
        201,
    )
    minimal = http.post(
        f"/v2/payments/captures/{capture}/refund", json={"amount": {"value": "1.00", "currency_code": "EUR"}}
    )
    assert set(checked(minimal, f"POST {CAPTURE}/refund", 201)) == {"id", "status", "links"}
    checked(http.get(f"/v2/payments/refunds/{made['id']}"), "GET /v2/payments/refunds/{refund_id}", 200)
    shown = checked(http.get(f"/v2/payments/captures/{capture}"), f"GET {CAPTURE}", 200)
    assert shown["status"] == "PARTIALLY_REFUNDED"
    order = shown["supplementary_data"]["related_ids"]["order_id"]
    checked(http.get(f"/v2/checkout/orders/{order}"), "GET /v2/checkout/orders/{id}", 200)

    slow = paypal_control.seed_capture(amount="20.00", currency="EUR", refund_behavior="pending")
    pending = http.post(f"/v2/payments/captures/{slow}/refund", json={}, headers=REPRESENTATION)
    assert checked(pending, f"POST {CAPTURE}/refund", 201)["status_details"] == {"reason": "ECHECK"}
    paypal_control.settle_refund(pending.json()["id"], "FAILED")
    failed = checked(
        http.get(f"/v2/payments/refunds/{pending.json()['id']}"), "GET /v2/payments/refunds/{refund_id}", 200
    )
    assert failed["status"] == "FAILED"


def test_a_capture_received_in_another_currency_answers_as_published(
    http: httpx.Client, paypal_control: PayPalSandboxControl
) -> None:
    """The conversion fields the FX booking reads, on a capture and on a refund of it."""
    capture = paypal_control.seed_capture(
        amount="100.00", currency="USD", receivable_currency="EUR", exchange_rate="0.90"
    )
    shown = checked(http.get(f"/v2/payments/captures/{capture}"), f"GET {CAPTURE}", 200)
    received = shown["seller_receivable_breakdown"]
    assert received["exchange_rate"] == {"source_currency": "USD", "target_currency": "EUR", "value": "0.90"}
    assert received["receivable_amount"] == {"currency_code": "EUR", "value": "87.30"}  # (100 - 3 fee) x 0.9
    refund = http.post(
        f"{CAPTURE.format(capture_id=capture)}/refund",
        json={"amount": {"value": "50.00", "currency_code": "USD"}},
        headers={**REPRESENTATION, "PayPal-Request-Id": unique("k")},
    )
    paid = checked(refund, f"POST {CAPTURE}/refund", 201)["seller_payable_breakdown"]
    assert paid["net_amount_in_receivable_currency"] == {"currency_code": "EUR", "value": "45.00"}


def test_transaction_search_answers_as_published(
    http: httpx.Client, paypal_control: PayPalSandboxControl
) -> None:
    capture = paypal_control.seed_capture(amount="30.00", currency="EUR")
    made = paypal_control.dashboard_refund(capture, "4.00")
    window = {"start_date": "2000-01-01T00:00:00Z", "end_date": "2000-01-31T00:00:00Z"}
    empty = checked(http.get(SEARCH, params=window), f"GET {SEARCH}", 200)
    assert "transaction_details" not in empty  # PayPal's schema: a list of one or more, else none
    now = datetime.now(UTC)
    window = {
        "start_date": f"{now - timedelta(days=1):%Y-%m-%dT%H:%M:%SZ}",
        "end_date": f"{now + timedelta(minutes=1):%Y-%m-%dT%H:%M:%SZ}",
    }
    found = checked(http.get(SEARCH, params={**window, "transaction_type": "T1107"}), f"GET {SEARCH}", 200)
    mine = [
        d["transaction_info"]
        for d in found["transaction_details"]
        if d["transaction_info"]["transaction_id"] == made["id"]
    ]
    assert [(t["paypal_reference_id"], t["transaction_amount"]["value"]) for t in mine] == [
        (capture, "-4.00")
    ]
    too_long = http.get(
        SEARCH, params={"start_date": "2026-01-01T00:00:00Z", "end_date": "2026-03-01T00:00:00Z"}
    )
    assert too_long.status_code == 400


def test_authorizations_and_voids_answer_as_published(
    http: httpx.Client, paypal_control: PayPalSandboxControl
) -> None:
    authorization = paypal_control.seed_authorization(amount="20.00", currency="EUR")
    checked(http.get(f"/v2/payments/authorizations/{authorization}"), f"GET {AUTHORIZATION}", 200)
    voided = http.post(f"/v2/payments/authorizations/{authorization}/void", headers=REPRESENTATION)
    assert checked(voided, f"POST {AUTHORIZATION}/void", 200)["status"] == "VOIDED"
    again = http.post(f"/v2/payments/authorizations/{authorization}/void")
    assert checked(again, f"POST {AUTHORIZATION}/void", 422)["details"][0]["issue"] == "PREVIOUSLY_VOIDED"
    other = paypal_control.seed_authorization(amount="5.00", currency="EUR")
    assert http.post(f"/v2/payments/authorizations/{other}/void").status_code == 204  # no body


def test_refusals_answer_as_published(
    http: httpx.Client, paypal_control: PayPalSandboxControl, paypal_sandbox: PayPalEnvironment
) -> None:
    capture = paypal_control.seed_capture(amount="10.00", currency="EUR")
    path, operation = f"/v2/payments/captures/{capture}/refund", f"POST {CAPTURE}/refund"

    def amount(value: str, currency: str = "EUR") -> dict[str, Any]:
        return {"amount": {"value": value, "currency_code": currency}}

    refusals: list[tuple[dict[str, Any] | bytes, int, str]] = [
        (amount("99.00"), 422, "REFUND_AMOUNT_EXCEEDED"),
        (amount("1.001"), 422, "DECIMAL_PRECISION"),
        (amount("0.00"), 422, "CANNOT_BE_ZERO_OR_NEGATIVE"),
        (amount("1.00", "USD"), 422, "CURRENCY_MISMATCH"),
        (amount("1.00", "KWD"), 422, "INVALID_CURRENCY_CODE"),
        (amount("x"), 400, "INVALID_PARAMETER_SYNTAX"),
        ({"custom_id": "r" * 128}, 400, "INVALID_STRING_LENGTH"),  # PayPal takes 127 at most
        (b"{not json", 400, "INVALID_PARAMETER_SYNTAX"),
    ]
    for body, status, issue in refusals:
        sent = http.post(path, content=body) if isinstance(body, bytes) else http.post(path, json=body)
        assert checked(sent, operation, status)["details"][0]["issue"] == issue
    http.post(path, json={})
    assert (
        checked(http.post(path, json={}), operation, 422)["details"][0]["issue"] == "CAPTURE_FULLY_REFUNDED"
    )
    missing = http.post("/v2/payments/captures/NOSUCHCAPTURE0000/refund", json={})
    assert checked(missing, operation, 404)["details"][0]["issue"] == "INVALID_RESOURCE_ID"
    checked(http.get("/v2/payments/captures/NOSUCHCAPTURE0000"), f"GET {CAPTURE}", 404)
    checked(httpx.get(f"{paypal_sandbox.url}/v2/payments/captures/{capture}"), f"GET {CAPTURE}", 401)


# the sandbox's webhooks -------------------------------------------------------------------------

_RESOURCES = {
    "refund": "payments.refund",
    "capture": "payments.capture-2",
    "authorization": "payments.authorization-2",
    "dispute": "disputes.dispute",
}


def test_every_event_the_sandbox_sends_is_published(
    http: httpx.Client, paypal_control: PayPalSandboxControl, paypal_webhooks: WebhookReceiver
) -> None:
    capture = paypal_control.seed_capture(amount="50.00", currency="EUR")
    slow = paypal_control.seed_capture(amount="20.00", currency="EUR", refund_behavior="pending")
    authorization = paypal_control.seed_authorization(amount="5.00", currency="EUR")
    made = http.post(
        f"/v2/payments/captures/{capture}/refund",
        json={"custom_id": "req-1", "amount": {"value": "5.00", "currency_code": "EUR"}},
    )
    pending = http.post(f"/v2/payments/captures/{slow}/refund", json={})
    paypal_control.settle_refund(pending.json()["id"], "FAILED")
    http.post(f"/v2/payments/authorizations/{authorization}/void")
    paypal_control.dashboard_refund(capture, "2.00")
    paypal_control.reverse_capture(capture, "1.00")
    paypal_control.open_dispute(slow)
    needles = (made.json()["id"], pending.json()["id"], authorization, capture, slow)
    expected = {
        "PAYMENT.CAPTURE.REFUNDED",
        "PAYMENT.REFUND.FAILED",
        "PAYMENT.AUTHORIZATION.VOIDED",
        "PAYMENT.CAPTURE.REVERSED",
        "CUSTOMER.DISPUTE.CREATED",
    }

    def sent() -> dict[str, list[dict[str, Any]]]:
        events: dict[str, list[dict[str, Any]]] = {}
        for needle in needles:
            for delivery in paypal_webhooks.matching(needle):
                event = json.loads(delivery.body)
                events.setdefault(event["event_type"], []).append(event)
        return events

    events = eventually(lambda: (found := sent()).keys() >= expected and found)
    for copies in events.values():
        for event in copies:
            assert_schema("paypal", "webhooks.event", event)
            assert_schema("paypal", _RESOURCES[event["resource_type"]], event["resource"])


# what our transformers read ---------------------------------------------------------------------

# Every PayPal field adapters/psp/paypal_transformers.py reads, where PayPal publishes it.
_READ = [
    ("payments.capture-2", "id"),
    ("payments.capture-2", "status"),
    ("payments.capture-2", "amount.value"),
    ("payments.capture-2", "amount.currency_code"),
    ("payments.capture-2", "create_time"),
    ("payments.capture-2", "supplementary_data.related_ids.order_id"),
    ("payments.authorization-2", "id"),
    ("payments.authorization-2", "status"),
    ("payments.authorization-2", "amount.value"),
    ("payments.refund", "id"),
    ("payments.refund", "status"),
    ("payments.refund", "status_details.reason"),
    ("payments.refund", "amount.value"),
    ("payments.refund", "custom_id"),
    ("payments.refund", "invoice_id"),
    ("payments.refund", "create_time"),
    ("payments.refund", "links[].rel"),
    ("payments.refund", "links[].href"),
    ("reporting.search_response", "total_pages"),
    ("reporting.search_response", "transaction_details[].transaction_info.transaction_id"),
    ("reporting.transaction_info", "paypal_reference_id"),
    ("reporting.transaction_info", "transaction_event_code"),
    ("reporting.transaction_info", "transaction_amount.value"),
    ("reporting.transaction_info", "transaction_status"),
    ("payments.capture-2", "seller_receivable_breakdown.receivable_amount.value"),
    ("payments.capture-2", "seller_receivable_breakdown.paypal_fee_in_receivable_currency.value"),
    ("payments.refund", "seller_payable_breakdown.net_amount_in_receivable_currency.value"),
    ("payments.refund", "seller_payable_breakdown.paypal_fee_in_receivable_currency.currency_code"),
    ("payments.refund", "seller_payable_breakdown.paypal_fee.value"),
    ("orders.order", "purchase_units[].payments.refunds[].links[].href"),
    ("orders.order", "purchase_units[].payments.refunds[].amount.value"),
    ("disputes.dispute", "dispute_id"),
    ("disputes.dispute", "reason"),
    ("disputes.dispute", "disputed_transactions[].seller_transaction_id"),
    ("webhooks.event", "id"),
    ("webhooks.event", "event_type"),
    ("webhooks.event", "resource"),
    ("payments.error_422", "details[].issue"),
    ("payments.error_422", "details[].description"),
    ("payments.error_422", "name"),
    ("payments.error_422", "message"),
]


@pytest.mark.parametrize(("schema", "path"), _READ)
def test_every_field_we_read_is_published(schema: str, path: str) -> None:
    assert published("paypal", schema, path), f"PayPal publishes no {path} in {schema}"


def _statuses(schema: str) -> set[str]:
    status_schema = spec("paypal")["components"]["schemas"][schema]["properties"]["status"]
    return set(status_schema["enum"])


def test_every_status_paypal_publishes_is_one_we_know() -> None:
    refunds = {
        "COMPLETED": PspRefundStatus.SUCCEEDED,
        "PENDING": PspRefundStatus.PENDING,
        "FAILED": PspRefundStatus.FAILED,
        "CANCELLED": PspRefundStatus.FAILED,
    }
    assert _statuses("payments.refund_status") == refunds.keys()
    assert {status: tf.refund_status(status) for status in refunds} == refunds

    amount = {"value": "10.00", "currency_code": "EUR"}
    captured = {"COMPLETED", "PARTIALLY_REFUNDED", "REFUNDED"}
    assert _statuses("payments.capture_status") == captured | {"PENDING", "DECLINED", "FAILED"}
    for status in _statuses("payments.capture_status"):
        state = tf.payment_from_capture({"id": "C", "status": status, "amount": amount}, 0).state
        assert state is (PaymentState.CAPTURED if status in captured else PaymentState.OTHER), status

    authorised = {"CREATED": PaymentState.AUTHORIZED, "VOIDED": PaymentState.CANCELED}
    assert _statuses("payments.authorization_status") == {
        *authorised,
        "CAPTURED",
        "PARTIALLY_CAPTURED",
        "DENIED",
        "PENDING",
    }
    for status in _statuses("payments.authorization_status"):
        state = tf.payment_from_authorization({"id": "A", "status": status, "amount": amount}).state
        assert state is authorised.get(status, PaymentState.OTHER), status
