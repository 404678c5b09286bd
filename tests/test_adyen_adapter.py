"""`AdyenAdapter` on the official SDK against the Adyen sandbox over HTTP: results, error classification,
signed notifications, amounts."""

from __future__ import annotations

import copy
import json
import threading
from typing import Any

import pytest
from Adyen.client import AdyenClient
from Adyen.util import generate_notification_sig

from adapters.db.reference_aliases import DatabaseReferenceBook
from adapters.psp import adyen_transformers as tf
from adapters.psp.adyen import (
    ADYEN_MAX_REFERENCE_LENGTH,
    AdyenAdapter,
    adyen_idempotency_key,
    adyen_reference,
    sdk_checkout_version,
)
from adapters.psp.base import PspError, PspEvent, WebhookRejected
from domain.contracts import PspRefundCall
from domain.money import Money
from domain.status import ErrorCode, PaymentState, PspRefundStatus, RefundMethod
from sandbox.adyen.control import AdyenSandboxControl
from tests.fixtures.adyen import (  # noqa: F401  (fixtures, used by name)
    ADYEN_HMAC_KEY,
    ADYEN_MERCHANT,
    AdyenStack,
    MemoryPaymentBook,
    deliveries_with,
    fixture_adyen_adapter,
    fixture_adyen_control,
    fixture_adyen_receiver,
    fixture_adyen_stack,
    fixture_payment_book,
    fixture_reference_book,
)
from tests.fixtures.sandbox import eventually, unique

VECTOR_KEY = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"
VECTOR_ITEM: dict[str, Any] = {
    "pspReference": "7914073381342284",
    "merchantAccountCode": "TestMerchant",
    "merchantReference": "TestPayment-1407325143704",
    "amount": {"value": 1130, "currency": "EUR"},
    "eventCode": "AUTHORISATION",
    "success": "true",
}


def parse(adapter: AdyenAdapter, stack: AdyenStack, needle: str, event_code: str) -> PspEvent:
    delivery = deliveries_with(stack.receiver, needle, event_code)[0]
    events = adapter.parse_webhook(delivery.body, delivery.headers)
    assert len(events) == 1
    return events[0]


def seed(
    control: AdyenSandboxControl,
    adapter: AdyenAdapter,
    stack: AdyenStack,
    book: MemoryPaymentBook,
    *,
    amount: int = 10_000,
    currency: str = "EUR",
    captured: bool = True,
) -> str:
    """Seed a payment and learn it the product's way: from its AUTHORISATION/CAPTURE notifications."""
    reference = control.seed_payment(amount=amount, currency=currency, captured=captured)
    for code in ("AUTHORISATION", "CAPTURE") if captured else ("AUTHORISATION",):
        event = parse(adapter, stack, reference, code)
        assert event.kind == "payment_update" and event.payment is not None
        book.record(event.payment, event.account)
    return reference


def make_call(
    adapter: AdyenAdapter,
    reference: str,
    amount: int,
    *,
    currency: str = "EUR",
    request_id: str | None = None,
    method: RefundMethod = RefundMethod.REFUND,
) -> PspRefundCall:
    return PspRefundCall(
        request_id=request_id or unique("req"),
        payment=adapter.lookup_payment(reference).payment,
        amount=Money(value=amount, currency=currency),
        reason_code="damaged",
        method=method,
    )


def signed_item(**fields: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "pspReference": "REF0000000000001",
        "originalReference": "PAY0000000000001",
        "merchantAccountCode": ADYEN_MERCHANT,
        "merchantReference": "rf-req-1",
        "amount": {"value": 100, "currency": "EUR"},
        "eventCode": "REFUND",
        "success": "true",
        "reason": "",
        **fields,
    }
    item["additionalData"] = {"hmacSignature": tf.hmac_signature(item, ADYEN_HMAC_KEY)}
    return item


def delivery(*notification_items: dict[str, Any]) -> bytes:
    entries = [{"NotificationRequestItem": item} for item in notification_items]
    return json.dumps({"live": "false", "notificationItems": entries}).encode()


# signatures and amounts (no HTTP) --------------------------------------------------------------


def test_hmac_test_vector_from_psp_notes() -> None:
    assert tf.hmac_signing_string(VECTOR_ITEM) == (
        "7914073381342284::TestMerchant:TestPayment-1407325143704:1130:EUR:AUTHORISATION:true"
    )
    assert tf.hmac_signature(VECTOR_ITEM, VECTOR_KEY) == "coqCmt/IZ4E3CzPvMY8zTjQVL5hYJUiBRg8UU+iCWo0="
    # The SDK's signer (which the sandbox uses) agrees.
    assert generate_notification_sig(VECTOR_ITEM, VECTOR_KEY).decode() == tf.hmac_signature(
        VECTOR_ITEM, VECTOR_KEY
    )


@pytest.mark.parametrize(
    ("currency", "ours", "adyen"),
    [
        ("EUR", 1_250, 1_250),
        ("JPY", 500, 500),
        ("KWD", 1_234, 1_234),
        ("CLP", 500, 50_000),
        ("IDR", 12_300, 123),
    ],
)
def test_amounts_follow_adyen_currency_exponents(currency: str, ours: int, adyen: int) -> None:
    assert tf.to_adyen_amount(Money(value=ours, currency=currency)) == {"value": adyen, "currency": currency}
    assert tf.from_adyen_amount(adyen, currency) == ours


def test_unrepresentable_amount_fails_without_calling_adyen(adyen_adapter: AdyenAdapter) -> None:
    assert tf.to_adyen_amount(Money(value=12_345, currency="IDR")) is None
    call = PspRefundCall(
        request_id=unique("req"),
        payment=tf.not_found("NOPE"),
        amount=Money(value=12_345, currency="IDR"),
        reason_code="damaged",
    )
    result = adyen_adapter.refund(call)
    assert (result.status, result.failure_code) == (PspRefundStatus.FAILED, ErrorCode.INVALID_AMOUNT)


def test_idempotency_keys_fit_adyens_64_characters() -> None:
    assert adyen_idempotency_key("r-1", 1) == "refund:r-1"
    assert adyen_idempotency_key("r-1", 2) == "refund:r-1:2"
    long_id = "r" * 128
    key = adyen_idempotency_key(long_id, 3)
    assert len(key) == 64 and key == adyen_idempotency_key(long_id, 3) != adyen_idempotency_key(long_id, 2)


def test_the_sdk_version_is_appended_and_live_urls_survive_the_sdk(
    adyen_stack: AdyenStack, reference_book: DatabaseReferenceBook
) -> None:
    version = sdk_checkout_version()
    assert version == "v72"
    book = MemoryPaymentBook()
    local = AdyenAdapter(
        "k", adyen_stack.api_base + "/", ADYEN_MERCHANT, ADYEN_HMAC_KEY, book, reference_book
    )
    assert local.checkout_url == f"{adyen_stack.api_base}/{version}"
    live_base = "https://1797a841fbb37ca7-AdyenDemo-checkout-live.adyenpayments.com/checkout"
    live = AdyenAdapter("k", live_base, ADYEN_MERCHANT, ADYEN_HMAC_KEY, book, reference_book)
    client: AdyenClient = live._modifications.client
    # With platform "test" the SDK would rewrite "-live" to "-test"; the adapter picks "live".
    assert client._determine_api_url(client.platform, live.checkout_url) == f"{live_base}/{version}"


# lookups and what Adyen cannot do --------------------------------------------------------------


def test_payments_are_known_from_authorisation_and_capture_notifications(
    adyen_adapter: AdyenAdapter,
    adyen_control: AdyenSandboxControl,
    adyen_stack: AdyenStack,
    payment_book: MemoryPaymentBook,
) -> None:
    assert adyen_adapter.lookup_payment("UNKNOWN00000001").payment.state is PaymentState.NOT_FOUND
    captured = seed(adyen_control, adyen_adapter, adyen_stack, payment_book, amount=4_200)
    payment = adyen_adapter.lookup_payment(captured).payment
    assert (payment.state, payment.amount_captured, payment.currency) == (PaymentState.CAPTURED, 4_200, "EUR")
    authorised = seed(adyen_control, adyen_adapter, adyen_stack, payment_book, amount=900, captured=False)
    payment = adyen_adapter.lookup_payment(authorised).payment
    assert (payment.state, payment.amount_authorized) == (PaymentState.AUTHORIZED, 900)


def test_no_search_and_no_read_back(adyen_adapter: AdyenAdapter) -> None:
    call = PspRefundCall(
        request_id="r-1", payment=tf.not_found("X"), amount=Money(value=1, currency="EUR"), reason_code="x"
    )
    assert adyen_adapter.find_refund(call) is None
    assert adyen_adapter.get_refund("REF1", "r-1").status is PspRefundStatus.PENDING
    assert adyen_adapter.webhook_acknowledgement() == ("[accepted]", "text/plain")


# refunds and voids ----------------------------------------------------------------------------


def test_refund_is_received_then_a_signed_refund_notification_succeeds(
    adyen_adapter: AdyenAdapter,
    adyen_control: AdyenSandboxControl,
    adyen_stack: AdyenStack,
    payment_book: MemoryPaymentBook,
) -> None:
    reference = seed(adyen_control, adyen_adapter, adyen_stack, payment_book)
    call = make_call(adyen_adapter, reference, 2_500)
    result = adyen_adapter.refund(call)
    assert result.status is PspRefundStatus.PENDING
    assert result.amount == Money(value=2_500, currency="EUR")
    assert result.psp_refund_id and result.psp_request_id == result.psp_refund_id

    event = parse(adyen_adapter, adyen_stack, result.psp_refund_id, "REFUND")
    assert (event.kind, event.request_id, event.raw_type) == ("refund_update", call.request_id, "REFUND")
    assert event.update is not None
    assert (event.update.psp_refund_id, event.update.status) == (
        result.psp_refund_id,
        PspRefundStatus.SUCCEEDED,
    )
    assert event.update.psp_event_id == f"adyen:{result.psp_refund_id}:REFUND:true" == event.event_id
    [modification] = adyen_control.modifications(reference)
    assert modification["idempotency_key"] == f"refund:{call.request_id}"
    assert modification["merchant_reference"] == adyen_reference(call.request_id)


def test_a_request_id_longer_than_adyens_reference_travels_as_an_alias(
    adyen_adapter: AdyenAdapter,
    adyen_control: AdyenSandboxControl,
    adyen_stack: AdyenStack,
    payment_book: MemoryPaymentBook,
) -> None:
    """Adyen's `reference` holds 80 characters, our request ids 128: the notification still finds us."""
    reference = seed(adyen_control, adyen_adapter, adyen_stack, payment_book)
    call = make_call(adyen_adapter, reference, 700, request_id=unique("r" * 100))
    result = adyen_adapter.refund(call)
    assert result.status is PspRefundStatus.PENDING and result.psp_refund_id

    [modification] = adyen_control.modifications(reference)
    sent = modification["merchant_reference"]
    assert sent != call.request_id and len(sent) <= ADYEN_MAX_REFERENCE_LENGTH
    event = parse(adyen_adapter, adyen_stack, result.psp_refund_id, "REFUND")
    assert (event.kind, event.request_id) == ("refund_update", call.request_id)


def test_refund_above_the_capture_fails_by_notification(
    adyen_adapter: AdyenAdapter,
    adyen_control: AdyenSandboxControl,
    adyen_stack: AdyenStack,
    payment_book: MemoryPaymentBook,
) -> None:
    reference = seed(adyen_control, adyen_adapter, adyen_stack, payment_book, amount=1_000)
    result = adyen_adapter.refund(make_call(adyen_adapter, reference, 1_001))
    assert result.status is PspRefundStatus.PENDING and result.psp_refund_id
    event = parse(adyen_adapter, adyen_stack, result.psp_refund_id, "REFUND")
    assert event.update is not None
    assert (event.update.status, event.update.failure_code) == (
        PspRefundStatus.FAILED,
        ErrorCode.REFUND_EXCEEDS_CAPTURE,
    )
    assert event.update.failure_message == "Insufficient balance on payment"
    assert event.event_id.endswith(":REFUND:false")


def test_void_of_an_authorised_payment_is_a_cancellation(
    adyen_adapter: AdyenAdapter,
    adyen_control: AdyenSandboxControl,
    adyen_stack: AdyenStack,
    payment_book: MemoryPaymentBook,
) -> None:
    reference = seed(adyen_control, adyen_adapter, adyen_stack, payment_book, amount=700, captured=False)
    call = make_call(adyen_adapter, reference, 700, method=RefundMethod.VOID)
    result = adyen_adapter.refund(call)
    assert (result.status, result.method) == (PspRefundStatus.PENDING, RefundMethod.VOID)
    assert result.psp_refund_id
    event = parse(adyen_adapter, adyen_stack, result.psp_refund_id, "CANCELLATION")
    assert event.update is not None
    assert (event.kind, event.request_id, event.update.status) == (
        "refund_update",
        call.request_id,
        PspRefundStatus.SUCCEEDED,
    )
    assert [m["kind"] for m in adyen_control.modifications(reference)] == ["cancel"]


def test_late_refund_failed_after_a_successful_refund(
    adyen_adapter: AdyenAdapter,
    adyen_control: AdyenSandboxControl,
    adyen_stack: AdyenStack,
    payment_book: MemoryPaymentBook,
) -> None:
    reference = seed(adyen_control, adyen_adapter, adyen_stack, payment_book)
    call = make_call(adyen_adapter, reference, 300)
    refund_id = str(adyen_adapter.refund(call).psp_refund_id)
    first = parse(adyen_adapter, adyen_stack, refund_id, "REFUND")
    adyen_control.fail_refund_late(refund_id, reason="Refund rejected by the issuer")
    late = parse(adyen_adapter, adyen_stack, refund_id, "REFUND_FAILED")
    assert first.update is not None and late.update is not None
    assert (late.request_id, late.update.psp_refund_id, late.update.status, late.update.failure_code) == (
        call.request_id,
        refund_id,
        PspRefundStatus.FAILED,
        ErrorCode.PSP_DECLINED,
    )
    assert late.update.failure_message == "Refund rejected by the issuer"
    assert late.update.psp_event_id != first.update.psp_event_id


def test_refunded_reversed_fails_our_refund_found_by_its_alias(
    adyen_adapter: AdyenAdapter,
    adyen_control: AdyenSandboxControl,
    adyen_stack: AdyenStack,
    payment_book: MemoryPaymentBook,
) -> None:
    """REFUNDED_REVERSED: the refunded money came back to the merchant, the customer was not paid. It
    fails the refund as REFUND_FAILED does, found by our reference (an alias here) like a REFUND."""
    reference = seed(adyen_control, adyen_adapter, adyen_stack, payment_book)
    call = make_call(adyen_adapter, reference, 450, request_id=unique("r" * 100))
    refund_id = str(adyen_adapter.refund(call).psp_refund_id)
    parse(adyen_adapter, adyen_stack, refund_id, "REFUND")
    adyen_control.reverse_refund_late(refund_id, reason="Account closed")
    event = parse(adyen_adapter, adyen_stack, refund_id, "REFUNDED_REVERSED")
    assert event.update is not None
    assert (event.kind, event.request_id, event.payment_reference) == (
        "refund_update",
        call.request_id,
        reference,
    )
    assert (event.update.psp_refund_id, event.update.status, event.update.failure_code) == (
        refund_id,
        PspRefundStatus.FAILED,
        ErrorCode.PSP_DECLINED,
    )
    assert (event.update.amount, event.update.failure_message) == (
        Money(value=450, currency="EUR"),
        "Account closed",
    )
    assert event.event_id == f"adyen:{refund_id}:REFUNDED_REVERSED:true"


def test_a_dashboard_refund_failing_late_carries_its_amount(
    adyen_adapter: AdyenAdapter,
    adyen_control: AdyenSandboxControl,
    adyen_stack: AdyenStack,
    payment_book: MemoryPaymentBook,
) -> None:
    """A refund made in the Customer Area (nothing of ours on it) that fails later: adopted with its
    amount, so that its booking can be reversed."""
    reference = seed(adyen_control, adyen_adapter, adyen_stack, payment_book)
    refund_id = adyen_control.dashboard_refund(reference, 1_200)
    parse(adyen_adapter, adyen_stack, refund_id, "REFUND")
    adyen_control.fail_refund_late(refund_id)
    event = parse(adyen_adapter, adyen_stack, refund_id, "REFUND_FAILED")
    assert event.update is not None
    assert (event.request_id, event.payment_reference, event.update.status) == (
        None,
        reference,
        PspRefundStatus.FAILED,
    )
    assert event.update.amount == Money(value=1_200, currency="EUR")


def test_unknown_payment_is_a_failed_result(adyen_adapter: AdyenAdapter) -> None:
    call = PspRefundCall(
        request_id=unique("req"),
        payment=tf.not_found("NOSUCHPAYMENT001"),
        amount=Money(value=100, currency="EUR"),
        reason_code="damaged",
    )
    result = adyen_adapter.refund(call)
    assert (result.status, result.failure_code) == (PspRefundStatus.FAILED, ErrorCode.PAYMENT_NOT_FOUND)


# idempotency and faults -----------------------------------------------------------------------


def test_same_key_replays_the_first_answer_and_other_amounts_conflict(
    adyen_adapter: AdyenAdapter,
    adyen_control: AdyenSandboxControl,
    adyen_stack: AdyenStack,
    payment_book: MemoryPaymentBook,
) -> None:
    reference = seed(adyen_control, adyen_adapter, adyen_stack, payment_book)
    call = make_call(adyen_adapter, reference, 1_000)
    first = adyen_adapter.refund(call)
    again = adyen_adapter.refund(call)
    assert again.psp_refund_id == first.psp_refund_id
    assert len(adyen_control.modifications(reference)) == 1

    with pytest.raises(PspError) as err:
        adyen_adapter.refund(call.model_copy(update={"amount": Money(value=999, currency="EUR")}))
    assert (err.value.code, err.value.retryable, err.value.http_status) == (
        ErrorCode.IDEMPOTENCY_CONFLICT,
        False,
        422,
    )
    assert len(adyen_control.modifications(reference)) == 1


def test_lost_response_then_the_same_key_returns_the_one_refund(
    adyen_adapter: AdyenAdapter,
    adyen_control: AdyenSandboxControl,
    adyen_stack: AdyenStack,
    payment_book: MemoryPaymentBook,
) -> None:
    reference = seed(adyen_control, adyen_adapter, adyen_stack, payment_book)
    call = make_call(adyen_adapter, reference, 1_500)
    adyen_control.inject_fault("lose_response")
    with pytest.raises(PspError) as err:
        adyen_adapter.refund(call)
    assert (err.value.code, err.value.retryable, err.value.key_poisoned) == (
        ErrorCode.PSP_UNAVAILABLE,
        True,
        False,
    )
    [made] = adyen_control.modifications(reference)
    retried = adyen_adapter.refund(call)
    assert retried.psp_refund_id == made["psp_reference"]
    assert len(adyen_control.modifications(reference)) == 1


def test_5xx_is_retryable_with_the_same_key(
    adyen_adapter: AdyenAdapter,
    adyen_control: AdyenSandboxControl,
    adyen_stack: AdyenStack,
    payment_book: MemoryPaymentBook,
) -> None:
    reference = seed(adyen_control, adyen_adapter, adyen_stack, payment_book)
    call = make_call(adyen_adapter, reference, 100)
    adyen_control.inject_fault("error_500")
    with pytest.raises(PspError) as err:
        adyen_adapter.refund(call)
    assert (err.value.code, err.value.retryable, err.value.http_status) == (
        ErrorCode.PSP_UNAVAILABLE,
        True,
        500,
    )
    assert adyen_control.modifications(reference) == []
    assert adyen_adapter.refund(call).status is PspRefundStatus.PENDING
    assert len(adyen_control.modifications(reference)) == 1


def test_429_is_rate_limited_with_retry_after(
    adyen_adapter: AdyenAdapter,
    adyen_control: AdyenSandboxControl,
    adyen_stack: AdyenStack,
    payment_book: MemoryPaymentBook,
) -> None:
    reference = seed(adyen_control, adyen_adapter, adyen_stack, payment_book)
    adyen_control.inject_fault("rate_limit", retry_after=2)
    with pytest.raises(PspError) as err:
        adyen_adapter.refund(make_call(adyen_adapter, reference, 100))
    assert (err.value.code, err.value.retryable, err.value.retry_after_seconds, err.value.http_status) == (
        ErrorCode.PSP_RATE_LIMITED,
        True,
        2.0,
        429,
    )


def test_key_in_use_is_psp_busy(
    adyen_adapter: AdyenAdapter,
    adyen_control: AdyenSandboxControl,
    adyen_stack: AdyenStack,
    payment_book: MemoryPaymentBook,
) -> None:
    reference = seed(adyen_control, adyen_adapter, adyen_stack, payment_book)
    call = make_call(adyen_adapter, reference, 100)
    adyen_control.inject_fault("slow", delay_ms=600)
    first = threading.Thread(target=adyen_adapter.refund, args=(call,))
    first.start()
    try:
        eventually(lambda: adyen_control.faults() == [])  # the slow call has taken the key
        with pytest.raises(PspError) as err:
            adyen_adapter.refund(call)
    finally:
        first.join(5)
    assert (err.value.code, err.value.retryable) == (ErrorCode.PSP_BUSY, True)
    assert len(adyen_control.modifications(reference)) == 1


def test_wrong_key_is_auth_failed_and_unreachable_is_unavailable(
    adyen_stack: AdyenStack, reference_book: DatabaseReferenceBook
) -> None:
    book = MemoryPaymentBook()
    call = PspRefundCall(
        request_id=unique("req"),
        payment=tf.not_found("ANY0000000000001"),
        amount=Money(value=100, currency="EUR"),
        reason_code="damaged",
    )
    wrong = AdyenAdapter(
        "not-the-key", adyen_stack.api_base, ADYEN_MERCHANT, ADYEN_HMAC_KEY, book, reference_book
    )
    with pytest.raises(PspError) as err:
        wrong.refund(call)
    assert (err.value.code, err.value.retryable, err.value.http_status) == (
        ErrorCode.PSP_AUTH_FAILED,
        False,
        401,
    )

    nowhere = AdyenAdapter(
        "k", "http://127.0.0.1:9/checkout", ADYEN_MERCHANT, ADYEN_HMAC_KEY, book, reference_book, 2
    )
    with pytest.raises(PspError) as err:
        nowhere.refund(call)
    assert (err.value.code, err.value.retryable) == (ErrorCode.PSP_UNAVAILABLE, True)


# webhooks -------------------------------------------------------------------------------------


def test_a_forged_item_rejects_the_whole_delivery(adyen_adapter: AdyenAdapter) -> None:
    good = signed_item()
    assert [e.kind for e in adyen_adapter.parse_webhook(delivery(good, good), {})] == ["refund_update"] * 2

    forged = copy.deepcopy(good)
    forged["amount"]["value"] = 100_000
    with pytest.raises(WebhookRejected) as err:
        adyen_adapter.parse_webhook(delivery(good, forged), {})
    assert err.value.code == "signature_invalid"

    other_key = copy.deepcopy(good)
    other_key["additionalData"]["hmacSignature"] = tf.hmac_signature(good, "00" * 32)
    with pytest.raises(WebhookRejected) as err:
        adyen_adapter.parse_webhook(delivery(other_key), {})
    assert err.value.code == "signature_invalid"

    unsigned = {key: value for key, value in good.items() if key != "additionalData"}
    with pytest.raises(WebhookRejected) as err:
        adyen_adapter.parse_webhook(delivery(good, unsigned), {})
    assert err.value.code == "signature_missing"

    for body in (b"{not json", b"{}", b'{"notificationItems": [{"x": 1}]}'):
        with pytest.raises(WebhookRejected) as err:
            adyen_adapter.parse_webhook(body, {})
        assert err.value.code == "invalid_payload"


def test_classification_of_other_events(adyen_adapter: AdyenAdapter) -> None:
    chargeback = signed_item(eventCode="NOTIFICATION_OF_CHARGEBACK", merchantReference="order-1")
    report = signed_item(eventCode="REPORT_AVAILABLE", pspReference="report.csv", originalReference=None)
    no_reference = signed_item(merchantReference="")
    foreign = signed_item(merchantAccountCode="SomeoneElse")
    refused_auth = signed_item(eventCode="AUTHORISATION", success="false", originalReference=None)
    typed_by_hand = signed_item(merchantReference="order-1", pspReference="REF0000000000002")
    ours = signed_item()
    events = adyen_adapter.parse_webhook(
        delivery(chargeback, report, no_reference, foreign, refused_auth, typed_by_hand, ours), {}
    )
    assert [(e.kind, e.raw_type) for e in events] == [
        ("dispute_opened", "NOTIFICATION_OF_CHARGEBACK"),
        ("ignored", "REPORT_AVAILABLE"),
        ("refund_update", "REFUND"),
        ("ignored", "REFUND"),
        ("ignored", "AUTHORISATION"),
        ("refund_update", "REFUND"),
        ("refund_update", "REFUND"),
    ]
    # only a reference we marked names a request of ours; any other is a refund to adopt
    assert [e.request_id for e in events[5:]] == [None, "req-1"]
    assert events[0].payment_reference == "PAY0000000000001"
    # a refund made in the Customer Area names no request of ours: it is reported for adoption
    dashboard = events[2]
    assert dashboard.request_id is None and dashboard.update is not None
    assert (dashboard.payment_reference, dashboard.update.amount) == (
        no_reference["originalReference"],
        Money(value=no_reference["amount"]["value"], currency=no_reference["amount"]["currency"]),
    )


def test_sandbox_chargeback_is_a_dispute(
    adyen_adapter: AdyenAdapter,
    adyen_control: AdyenSandboxControl,
    adyen_stack: AdyenStack,
    payment_book: MemoryPaymentBook,
) -> None:
    reference = seed(adyen_control, adyen_adapter, adyen_stack, payment_book)
    adyen_control.chargeback(reference)
    event = parse(adyen_adapter, adyen_stack, reference, "NOTIFICATION_OF_CHARGEBACK")
    assert (event.kind, event.payment_reference) == ("dispute_opened", reference)
