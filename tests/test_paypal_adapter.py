"""`PayPalAdapter` (the official SDK, over HTTP) against the PayPal sandbox: results, error
classification, idempotent retries, search, signed webhooks, amounts.
"""

from __future__ import annotations

import base64
import json
import threading
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.psp import paypal_transformers as tf
from adapters.psp.base import PspError, WebhookRejected
from adapters.psp.paypal import PayPalAdapter
from domain.contracts import PspRefundCall
from domain.money import Money
from domain.naming import idempotency_key
from domain.status import ErrorCode, PaymentState, PspRefundStatus, RefundMethod
from sandbox.paypal.control import PayPalSandboxControl
from sandbox.stripe.control import SandboxControl
from tests.fixtures.paypal import (  # noqa: F401  (fixtures, used by name)
    PayPalEnvironment,
    fixture_paypal_adapter,
    fixture_paypal_control,
    fixture_paypal_sandbox,
    fixture_paypal_webhooks,
    make_adapter,
)
from tests.fixtures.sandbox import WebhookReceiver, eventually, unique


def make_call(
    adapter: PayPalAdapter,
    reference: str,
    amount: int,
    *,
    currency: str = "EUR",
    request_id: str | None = None,
    generation: int = 1,
    method: RefundMethod = RefundMethod.REFUND,
) -> PspRefundCall:
    return PspRefundCall(
        request_id=request_id or unique("req"),
        payment=adapter.lookup_payment(reference).payment,
        amount=Money(value=amount, currency=currency),
        reason_code="damaged",
        key_generation=generation,
        method=method,
    )


def delivered(receiver: WebhookReceiver, needle: str, event_type: str) -> tuple[bytes, dict[str, str]]:
    """The first delivery of `event_type` mentioning `needle`, once it arrived."""

    def probe() -> tuple[bytes, dict[str, str]] | None:
        for delivery in receiver.matching(needle):
            if json.loads(delivery.body)["event_type"] == event_type:
                return delivery.body, delivery.headers
        return None

    return eventually(probe)


# lookup and OAuth ------------------------------------------------------------------------------


def test_lookup_capture_authorisation_and_unknown(
    paypal_adapter: PayPalAdapter, paypal_control: PayPalSandboxControl
) -> None:
    capture = paypal_control.seed_capture(amount="100.00", currency="EUR")
    authorization = paypal_control.seed_authorization(amount="2500", currency="JPY")

    captured = paypal_adapter.lookup_payment(capture)
    assert captured.payment.state is PaymentState.CAPTURED
    assert (captured.payment.amount_captured, captured.payment.currency) == (10_000, "EUR")
    assert captured.psp_request_id  # Paypal-Debug-Id
    authorized = paypal_adapter.lookup_payment(authorization).payment
    assert (authorized.state, authorized.amount_authorized, authorized.currency) == (
        PaymentState.AUTHORIZED,
        2500,
        "JPY",
    )
    assert paypal_adapter.lookup_payment("UNKNOWN0000000000").payment.state is PaymentState.NOT_FOUND


def test_lookup_counts_refunds_from_the_order(
    paypal_adapter: PayPalAdapter, paypal_control: PayPalSandboxControl
) -> None:
    capture = paypal_control.seed_capture(amount="100.00", currency="EUR")
    paypal_adapter.refund(make_call(paypal_adapter, capture, 3000))
    payment = paypal_adapter.lookup_payment(capture).payment
    assert (payment.amount_refunded, payment.refundable) == (3000, 7000)


def test_wrong_client_secret_is_auth_failed(
    paypal_sandbox: PayPalEnvironment, paypal_control: PayPalSandboxControl
) -> None:
    capture = paypal_control.seed_capture(amount="10.00", currency="EUR")
    adapter = make_adapter(paypal_sandbox, client_secret="wrong")
    with pytest.raises(PspError) as caught:
        adapter.lookup_payment(capture)
    assert (caught.value.code, caught.value.retryable, caught.value.http_status) == (
        ErrorCode.PSP_AUTH_FAILED,
        False,
        401,
    )


def test_token_is_fetched_once_and_reused(
    paypal_sandbox: PayPalEnvironment, paypal_control: PayPalSandboxControl
) -> None:
    adapter = make_adapter(paypal_sandbox)
    capture = paypal_control.seed_capture(amount="10.00", currency="EUR")
    before = paypal_sandbox.server.stats.snapshot()["calls"].get("POST /v1/oauth2/token", 0)
    for _ in range(3):
        adapter.lookup_payment(capture)
    after = paypal_sandbox.server.stats.snapshot()["calls"].get("POST /v1/oauth2/token", 0)
    assert after - before == 1


def test_unreachable_paypal_is_unavailable(paypal_sandbox: PayPalEnvironment) -> None:
    adapter = make_adapter(paypal_sandbox, api_base="http://127.0.0.1:9")
    with pytest.raises(PspError) as caught:
        adapter.lookup_payment("ANY")
    assert (caught.value.code, caught.value.retryable) == (ErrorCode.PSP_UNAVAILABLE, True)


# refunds ---------------------------------------------------------------------------------------


def test_refund_happy_path_carries_our_ids(
    paypal_adapter: PayPalAdapter, paypal_control: PayPalSandboxControl
) -> None:
    capture = paypal_control.seed_capture(amount="100.00", currency="EUR")
    call = make_call(paypal_adapter, capture, 1250)
    result = paypal_adapter.refund(call)
    assert result.status is PspRefundStatus.SUCCEEDED
    assert result.amount == Money(value=1250, currency="EUR")
    assert result.psp_refund_id and result.psp_request_id
    [refund] = paypal_control.refunds(capture)
    assert refund["amount"] == {"currency_code": "EUR", "value": "12.50"}
    assert refund["invoice_id"] == refund["custom_id"] == call.request_id
    assert refund["paypal_request_id"] == idempotency_key(call.request_id, 1)
    fetched = paypal_adapter.get_refund(result.psp_refund_id, call.request_id)
    assert (fetched.psp_refund_id, fetched.status) == (result.psp_refund_id, PspRefundStatus.SUCCEEDED)


def test_same_request_id_replays_one_refund(
    paypal_adapter: PayPalAdapter, paypal_control: PayPalSandboxControl
) -> None:
    capture = paypal_control.seed_capture(amount="100.00", currency="EUR")
    call = make_call(paypal_adapter, capture, 500)
    first = paypal_adapter.refund(call)
    second = paypal_adapter.refund(call)
    assert first.psp_refund_id == second.psp_refund_id
    assert len(paypal_control.refunds(capture)) == 1


def test_lost_response_then_retry_makes_one_refund(
    paypal_adapter: PayPalAdapter, paypal_control: PayPalSandboxControl
) -> None:
    capture = paypal_control.seed_capture(amount="100.00", currency="EUR")
    call = make_call(paypal_adapter, capture, 700)
    paypal_control.inject_fault("lose_response", method="POST")
    with pytest.raises(PspError) as caught:
        paypal_adapter.refund(call)
    assert (caught.value.code, caught.value.retryable) == (ErrorCode.PSP_UNAVAILABLE, True)
    retried = paypal_adapter.refund(call)
    assert retried.status is PspRefundStatus.SUCCEEDED
    [refund] = paypal_control.refunds(capture)
    assert refund["id"] == retried.psp_refund_id


def test_find_refund_adopts_under_generation_two(
    paypal_adapter: PayPalAdapter, paypal_control: PayPalSandboxControl
) -> None:
    capture = paypal_control.seed_capture(amount="100.00", currency="EUR")
    call = make_call(paypal_adapter, capture, 900)
    paypal_control.inject_fault("lose_response", method="POST")
    with pytest.raises(PspError):
        paypal_adapter.refund(call)
    next_generation = call.model_copy(update={"key_generation": 2})
    found = paypal_adapter.find_refund(next_generation)
    assert found is not None and found.adopted
    assert (found.status, found.amount) == (PspRefundStatus.SUCCEEDED, Money(value=900, currency="EUR"))
    assert [r["id"] for r in paypal_control.refunds(capture)] == [found.psp_refund_id]
    assert paypal_adapter.find_refund(call.model_copy(update={"request_id": unique("other")})) is None


@pytest.mark.parametrize(
    ("fault", "code", "retry_after"),
    [("error_500", ErrorCode.PSP_UNAVAILABLE, None), ("rate_limit", ErrorCode.PSP_RATE_LIMITED, 3.0)],
)
def test_transient_failures_are_retryable_and_store_nothing(
    paypal_adapter: PayPalAdapter,
    paypal_control: PayPalSandboxControl,
    fault: Any,
    code: ErrorCode,
    retry_after: float | None,
) -> None:
    capture = paypal_control.seed_capture(amount="100.00", currency="EUR")
    call = make_call(paypal_adapter, capture, 100)
    paypal_control.inject_fault(fault, method="POST", retry_after=3)
    with pytest.raises(PspError) as caught:
        paypal_adapter.refund(call)
    assert (caught.value.code, caught.value.retryable) == (code, True)
    assert caught.value.retry_after_seconds == retry_after
    assert caught.value.psp_request_id
    assert paypal_control.refunds(capture) == []
    assert paypal_adapter.refund(call).status is PspRefundStatus.SUCCEEDED


def test_concurrent_attempt_with_the_same_id_is_busy(
    paypal_sandbox: PayPalEnvironment, paypal_adapter: PayPalAdapter, paypal_control: PayPalSandboxControl
) -> None:
    capture = paypal_control.seed_capture(amount="100.00", currency="EUR")
    call = make_call(paypal_adapter, capture, 100)
    key = idempotency_key(call.request_id, 1)
    paypal_control.inject_fault("slow", method="POST", delay_ms=800)
    first = threading.Thread(target=paypal_adapter.refund, args=(call,))
    first.start()
    try:
        with SandboxControl(paypal_sandbox.url) as sandbox:
            eventually(lambda: key in sandbox.stats()["executing"])
        with pytest.raises(PspError) as caught:
            paypal_adapter.refund(call)
        assert (caught.value.code, caught.value.retryable) == (ErrorCode.PSP_BUSY, True)
    finally:
        first.join(5)
    assert len(paypal_control.refunds(capture)) == 1


def test_refund_beyond_the_capture_is_a_failed_result(
    paypal_adapter: PayPalAdapter, paypal_control: PayPalSandboxControl
) -> None:
    capture = paypal_control.seed_capture(amount="10.00", currency="EUR")
    result = paypal_adapter.refund(make_call(paypal_adapter, capture, 1001))
    assert (result.status, result.failure_code) == (PspRefundStatus.FAILED, ErrorCode.REFUND_EXCEEDS_CAPTURE)
    assert result.psp_refund_id is None and result.psp_request_id
    paypal_adapter.refund(make_call(paypal_adapter, capture, 1000))
    again = paypal_adapter.refund(make_call(paypal_adapter, capture, 1))
    assert (again.status, again.failure_code) == (PspRefundStatus.FAILED, ErrorCode.ALREADY_REFUNDED)


def test_void_of_an_authorisation(
    paypal_adapter: PayPalAdapter, paypal_control: PayPalSandboxControl
) -> None:
    authorization = paypal_control.seed_authorization(amount="25.00", currency="USD")
    call = make_call(paypal_adapter, authorization, 2500, currency="USD", method=RefundMethod.VOID)
    result = paypal_adapter.refund(call)
    assert (result.status, result.method, result.psp_refund_id) == (
        PspRefundStatus.SUCCEEDED,
        RefundMethod.VOID,
        authorization,
    )
    assert paypal_adapter.refund(call).status is PspRefundStatus.SUCCEEDED  # replayed by request id
    found = paypal_adapter.find_refund(call.model_copy(update={"key_generation": 2}))
    assert found is not None and found.adopted and found.status is PspRefundStatus.SUCCEEDED
    assert paypal_adapter.get_refund(authorization, call.request_id).status is PspRefundStatus.SUCCEEDED
    assert paypal_adapter.lookup_payment(authorization).payment.state is PaymentState.CANCELED
    other = paypal_adapter.refund(call.model_copy(update={"request_id": unique("req")}))
    assert (other.status, other.failure_code) == (PspRefundStatus.FAILED, ErrorCode.ALREADY_REFUNDED)


# webhooks --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("behavior", "event_type", "final"),
    [
        ("pending_then_completed", "PAYMENT.CAPTURE.REFUNDED", PspRefundStatus.SUCCEEDED),
        ("pending_then_failed", "PAYMENT.REFUND.FAILED", PspRefundStatus.FAILED),
    ],
)
def test_pending_refund_settles_by_signed_webhook(
    paypal_adapter: PayPalAdapter,
    paypal_control: PayPalSandboxControl,
    paypal_webhooks: WebhookReceiver,
    behavior: Any,
    event_type: str,
    final: PspRefundStatus,
) -> None:
    capture = paypal_control.seed_capture(
        amount="50.00", currency="EUR", refund_behavior=behavior, settle_after_ms=150
    )
    call = make_call(paypal_adapter, capture, 2000)
    result = paypal_adapter.refund(call)
    assert result.status is PspRefundStatus.PENDING and result.psp_refund_id
    body, headers = delivered(paypal_webhooks, result.psp_refund_id, event_type)
    [event] = paypal_adapter.parse_webhook(body, headers)
    assert (event.kind, event.request_id, event.raw_type) == ("refund_update", call.request_id, event_type)
    assert event.update is not None
    assert (event.update.psp_refund_id, event.update.status) == (result.psp_refund_id, final)
    assert paypal_adapter.get_refund(result.psp_refund_id, call.request_id).status is final


def test_forged_signature_and_foreign_cert_url_are_rejected(
    paypal_adapter: PayPalAdapter, paypal_control: PayPalSandboxControl, paypal_webhooks: WebhookReceiver
) -> None:
    capture = paypal_control.seed_capture(amount="50.00", currency="EUR")
    result = paypal_adapter.refund(make_call(paypal_adapter, capture, 100))
    assert result.psp_refund_id
    body, headers = delivered(paypal_webhooks, result.psp_refund_id, "PAYMENT.CAPTURE.REFUNDED")
    paypal_adapter.parse_webhook(body, headers)  # genuine: accepted

    tampered = body.replace(b'"COMPLETED"', b'"FAILED"', 1)
    with pytest.raises(WebhookRejected) as caught:
        paypal_adapter.parse_webhook(tampered, headers)
    assert caught.value.code == "signature_invalid"

    forged = {**headers, "PAYPAL-TRANSMISSION-SIG": base64.b64encode(b"\x00" * 256).decode()}
    with pytest.raises(WebhookRejected) as caught:
        paypal_adapter.parse_webhook(body, forged)
    assert caught.value.code == "signature_invalid"

    # The sandbox's certificate, served from a URL outside the allowed prefixes.
    elsewhere = {**headers, "PAYPAL-CERT-URL": "https://evil.example/_sandbox/paypal/cert.pem"}
    with pytest.raises(WebhookRejected) as caught:
        paypal_adapter.parse_webhook(body, elsewhere)
    assert caught.value.code == "signature_invalid"

    other_webhook = paypal_control.sign(body.decode(), webhook_id="WH-SOMEONE-ELSE")
    with pytest.raises(WebhookRejected) as caught:
        paypal_adapter.parse_webhook(body, other_webhook)
    assert caught.value.code == "signature_invalid"

    with pytest.raises(WebhookRejected) as caught:
        paypal_adapter.parse_webhook(body, {})
    assert caught.value.code == "signature_missing"

    # A genuine signature replayed later: PayPal signs each attempt afresh, so an old one is a replay.
    for sent_at in ("2026-01-01T00:00:00Z", "2099-01-01T00:00:00Z"):
        replayed = paypal_control.sign(body.decode(), sent_at=sent_at)
        with pytest.raises(WebhookRejected) as caught:
            paypal_adapter.parse_webhook(body, replayed)
        assert caught.value.code == "signature_expired"
    malformed_time = paypal_control.sign(body.decode(), sent_at="yesterday")
    with pytest.raises(WebhookRejected) as caught:
        paypal_adapter.parse_webhook(body, malformed_time)
    assert caught.value.code == "signature_invalid"


def test_reversal_dispute_and_unknown_events(
    paypal_adapter: PayPalAdapter, paypal_control: PayPalSandboxControl, paypal_webhooks: WebhookReceiver
) -> None:
    capture = paypal_control.seed_capture(amount="80.00", currency="EUR")
    paypal_control.open_dispute(capture)
    body, headers = delivered(paypal_webhooks, capture, "CUSTOMER.DISPUTE.CREATED")
    [dispute] = paypal_adapter.parse_webhook(body, headers)
    assert (dispute.kind, dispute.payment_reference) == ("dispute_opened", capture)

    paypal_control.reverse_capture(capture)
    body, headers = delivered(paypal_webhooks, capture, "PAYMENT.CAPTURE.REVERSED")
    [reversal] = paypal_adapter.parse_webhook(body, headers)
    assert (reversal.kind, reversal.payment_reference, reversal.request_id) == (
        "dispute_opened",
        capture,
        None,
    )

    unknown = json.dumps({"id": "WH-X", "event_type": "CHECKOUT.ORDER.APPROVED", "resource": {"id": "O"}})
    [ignored] = paypal_adapter.parse_webhook(unknown.encode(), paypal_control.sign(unknown))
    assert ignored.kind == "ignored"
    assert paypal_adapter.webhook_acknowledgement() == ("", "text/plain")


def test_void_webhook_names_the_authorisation(
    paypal_adapter: PayPalAdapter, paypal_control: PayPalSandboxControl, paypal_webhooks: WebhookReceiver
) -> None:
    authorization = paypal_control.seed_authorization(amount="5.00", currency="GBP")
    paypal_adapter.refund(
        make_call(paypal_adapter, authorization, 500, currency="GBP", method=RefundMethod.VOID)
    )
    body, headers = delivered(paypal_webhooks, authorization, "PAYMENT.AUTHORIZATION.VOIDED")
    [event] = paypal_adapter.parse_webhook(body, headers)
    assert event.kind == "refund_update" and event.update is not None
    assert (event.update.psp_refund_id, event.update.status) == (authorization, PspRefundStatus.SUCCEEDED)


# amounts ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "currency", "expected"),
    [
        (1250, "EUR", "12.50"),
        (1, "EUR", "0.01"),
        (500, "JPY", "500"),
        (1500, "HUF", "15"),  # ISO gives HUF two decimals, PayPal none
        (1550, "HUF", None),
        (2000, "TWD", "20"),
        (1234, "KWD", None),  # PayPal does not support KWD
        (1000, "CLP", None),  # nor CLP
    ],
)
def test_paypal_values(value: int, currency: str, expected: str | None) -> None:
    assert tf.to_paypal_value(Money(value=value, currency=currency)) == expected


@given(
    value=st.integers(min_value=1, max_value=10**15),
    currency=st.sampled_from(["EUR", "USD", "JPY", "HUF", "TWD", "GBP"]),
)
def test_paypal_values_round_trip_exactly(value: int, currency: str) -> None:
    money = Money(value=value, currency=currency)
    text = tf.to_paypal_value(money)
    if text is None:
        assert currency in ("HUF", "TWD") and value % 100
        return
    assert tf.from_paypal_value(text, currency) == value
    assert Decimal(text) * 10 ** (0 if currency == "JPY" else 2) == value


def test_unsupported_currency_is_refused_before_calling_paypal(
    paypal_adapter: PayPalAdapter, paypal_control: PayPalSandboxControl
) -> None:
    capture = paypal_control.seed_capture(amount="100.00", currency="EUR")
    call = make_call(paypal_adapter, capture, 1000).model_copy(
        update={"amount": Money(value=1234, currency="KWD")}
    )
    result = paypal_adapter.refund(call)
    assert (result.status, result.failure_code) == (PspRefundStatus.FAILED, ErrorCode.INVALID_AMOUNT)
    assert paypal_control.refunds(capture) == []


def test_zero_decimal_refund_reaches_paypal_as_whole_units(
    paypal_adapter: PayPalAdapter, paypal_control: PayPalSandboxControl
) -> None:
    capture = paypal_control.seed_capture(amount="3000", currency="JPY")
    result = paypal_adapter.refund(make_call(paypal_adapter, capture, 1200, currency="JPY"))
    assert result.amount == Money(value=1200, currency="JPY")
    assert paypal_control.refunds(capture)[0]["amount"] == {"currency_code": "JPY", "value": "1200"}
    huf = paypal_control.seed_capture(amount="100", currency="HUF")
    refunded = paypal_adapter.refund(make_call(paypal_adapter, huf, 5000, currency="HUF"))
    assert refunded.amount == Money(value=5000, currency="HUF")
    assert paypal_control.refunds(huf)[0]["amount"] == {"currency_code": "HUF", "value": "50"}
