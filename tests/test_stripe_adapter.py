"""`StripeAdapter` against the sandbox over HTTP: results, error classification, search, webhooks."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
import stripe

from adapters.psp import stripe_transformers as tf
from adapters.psp.base import PspError, WebhookRejected
from adapters.psp.stripe import StripeAdapter
from domain.contracts import PspRefundCall
from domain.money import Money
from domain.naming import idempotency_key
from domain.status import ErrorCode, PaymentState, PspRefundStatus, RefundMethod
from sandbox.server import SandboxServer
from sandbox.stripe.control import SandboxControl
from sandbox.stripe.engine import RefundBehavior
from tests.fixtures.sandbox import (  # noqa: F401  (fixtures, used by name)
    WEBHOOK_SECRET,
    WebhookReceiver,
    eventually,
    fixture_sandbox_control,
    fixture_stripe_adapter,
    fixture_stripe_sandbox,
    fixture_webhook_receiver,
    unique,
)


def make_call(
    adapter: StripeAdapter,
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


def signed(
    payload: dict[str, Any], *, secret: str = WEBHOOK_SECRET, age: int = 0
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload)
    header = stripe.WebhookSignature.generate_signature_header(body, secret, timestamp=int(time.time()) - age)
    return body.encode(), {"stripe-signature": header}


def refund_event(event_type: str, status: str, metadata: dict[str, str]) -> dict[str, Any]:
    return {
        "id": unique("evt"),
        "object": "event",
        "type": event_type,
        "data": {
            "object": {
                "id": "re_test",
                "object": "refund",
                "status": status,
                "amount": 100,
                "currency": "eur",
                "metadata": metadata,
            }
        },
    }


# lookups ----------------------------------------------------------------------------------------


def test_lookup_captured_payment_by_intent_and_by_charge(
    stripe_adapter: StripeAdapter, sandbox_control: SandboxControl
) -> None:
    payment = sandbox_control.seed_stripe_payment(amount=10_000, currency="EUR")
    stripe_adapter.refund(make_call(stripe_adapter, payment, 2_500))

    lookup = stripe_adapter.lookup_payment(payment)
    record = lookup.payment
    assert (record.state, record.currency, record.reference) == (
        PaymentState.CAPTURED,
        "EUR",
        payment,
    )
    assert (record.amount_captured, record.amount_refunded, record.refundable) == (
        10_000,
        2_500,
        7_500,
    )
    assert str(lookup.psp_request_id).startswith("req_")
    assert lookup.psp_response_ms is not None and lookup.psp_response_ms >= 0

    [refund] = sandbox_control.stripe_refunds(payment)
    by_charge = stripe_adapter.lookup_payment(refund["charge"]).payment
    assert (by_charge.state, by_charge.amount_captured, by_charge.amount_refunded) == (
        PaymentState.CAPTURED,
        10_000,
        2_500,
    )
    # named by its charge, it is still its intent's payment for the over-refund guard
    assert (by_charge.guard_reference, record.guard_reference) == (payment, payment)


def test_lookup_authorised_canceled_missing_and_zero_decimal(
    stripe_adapter: StripeAdapter, sandbox_control: SandboxControl
) -> None:
    authorised = sandbox_control.seed_stripe_payment(amount=8_000, currency="EUR", captured=False)
    record = stripe_adapter.lookup_payment(authorised).payment
    assert (record.state, record.amount_authorized, record.amount_captured) == (
        PaymentState.AUTHORIZED,
        8_000,
        0,
    )
    stripe_adapter.refund(make_call(stripe_adapter, authorised, 8_000, method=RefundMethod.VOID))
    assert stripe_adapter.lookup_payment(authorised).payment.state is PaymentState.CANCELED

    missing = stripe_adapter.lookup_payment("pi_missing_payment")
    assert missing.payment.state is PaymentState.NOT_FOUND
    assert str(missing.psp_request_id).startswith("req_")
    assert stripe_adapter.lookup_payment("ch_missing").payment.state is PaymentState.NOT_FOUND
    assert stripe_adapter.lookup_payment("order-42").payment.state is PaymentState.NOT_FOUND

    yen = sandbox_control.seed_stripe_payment(amount=12_000, currency="jpy")
    record = stripe_adapter.lookup_payment(yen).payment
    assert (record.currency, record.amount_captured) == ("JPY", 12_000)


# refunds ----------------------------------------------------------------------------------------


def test_refund_succeeds_once_under_the_derived_key(
    stripe_adapter: StripeAdapter, sandbox_control: SandboxControl
) -> None:
    payment = sandbox_control.seed_stripe_payment(amount=5_000, currency="EUR")
    call = make_call(stripe_adapter, payment, 1_500)

    result = stripe_adapter.refund(call)
    again = stripe_adapter.refund(call)

    assert (result.status, result.method, result.amount) == (
        PspRefundStatus.SUCCEEDED,
        RefundMethod.REFUND,
        Money(value=1_500, currency="EUR"),
    )
    assert str(result.psp_refund_id).startswith("re_") and again.psp_refund_id == result.psp_refund_id
    assert str(result.psp_request_id).startswith("req_") and result.psp_response_ms is not None
    [made] = sandbox_control.stripe_refunds(payment)
    assert made["idempotency_key"] == idempotency_key(call.request_id, 1)
    assert made["metadata"] == {
        "refund_request_id": call.request_id,
        "key_generation": "1",
        "reason_code": "damaged",
    }


def test_pending_refund_then_get_refund_sees_it_succeed(
    stripe_adapter: StripeAdapter, sandbox_control: SandboxControl
) -> None:
    payment = sandbox_control.seed_stripe_payment(
        amount=5_000, currency="EUR", refund_behavior="pending_then_succeeded", settle_after_ms=100
    )
    call = make_call(stripe_adapter, payment, 500)
    result = stripe_adapter.refund(call)
    assert result.status is PspRefundStatus.PENDING
    assert result.psp_refund_id is not None
    refund_id = result.psp_refund_id

    polled = eventually(
        lambda: (
            (r := stripe_adapter.get_refund(refund_id, call.request_id)).status is PspRefundStatus.SUCCEEDED
            and r
        )
    )
    assert polled.psp_refund_id == refund_id and polled.psp_request_id is not None
    with pytest.raises(PspError) as err:
        stripe_adapter.get_refund(refund_id, "someone-else")
    assert err.value.code is ErrorCode.INVALID_STATE


@pytest.mark.parametrize(
    ("amount", "prepare", "code"),
    [
        (5_001, None, ErrorCode.REFUND_EXCEEDS_CAPTURE),
        (100, "refund_all", ErrorCode.ALREADY_REFUNDED),
    ],
)
def test_stripe_refusals_are_failed_results(
    stripe_adapter: StripeAdapter,
    sandbox_control: SandboxControl,
    amount: int,
    prepare: str | None,
    code: ErrorCode,
) -> None:
    payment = sandbox_control.seed_stripe_payment(amount=5_000, currency="EUR")
    if prepare == "refund_all":
        stripe_adapter.refund(make_call(stripe_adapter, payment, 5_000))
    result = stripe_adapter.refund(make_call(stripe_adapter, payment, amount))
    assert (result.status, result.failure_code, result.psp_refund_id) == (
        PspRefundStatus.FAILED,
        code,
        None,
    )
    assert result.failure_message and str(result.psp_request_id).startswith("req_")


def test_refund_of_an_unknown_or_uncaptured_payment_fails(
    stripe_adapter: StripeAdapter, sandbox_control: SandboxControl
) -> None:
    authorised = sandbox_control.seed_stripe_payment(amount=900, currency="EUR", captured=False)
    result = stripe_adapter.refund(make_call(stripe_adapter, authorised, 900))
    assert (result.status, result.failure_code) == (PspRefundStatus.FAILED, ErrorCode.PSP_DECLINED)

    call = make_call(stripe_adapter, "pi_gone", 100)
    result = stripe_adapter.refund(call)
    assert (result.status, result.failure_code) == (
        PspRefundStatus.FAILED,
        ErrorCode.PAYMENT_NOT_FOUND,
    )


# error classification ---------------------------------------------------------------------------


def test_rate_limit_is_retryable_with_retry_after(
    stripe_adapter: StripeAdapter, sandbox_control: SandboxControl
) -> None:
    payment = sandbox_control.seed_stripe_payment(amount=5_000, currency="EUR")
    call = make_call(stripe_adapter, payment, 100)
    sandbox_control.inject_fault("rate_limit", path_prefix="/v1/refunds", retry_after=2.5)
    with pytest.raises(PspError) as err:
        stripe_adapter.refund(call)
    assert (err.value.code, err.value.retryable, err.value.http_status) == (
        ErrorCode.PSP_RATE_LIMITED,
        True,
        429,
    )
    assert err.value.retry_after_seconds == 2.5
    assert str(err.value.psp_request_id).startswith("req_")
    assert stripe_adapter.refund(call).status is PspRefundStatus.SUCCEEDED


def test_wrong_key_is_auth_failed_and_final(stripe_sandbox: SandboxServer) -> None:
    adapter = StripeAdapter("sk_test_wrong", stripe_sandbox.url, WEBHOOK_SECRET, timeout_seconds=5)
    with pytest.raises(PspError) as err:
        adapter.lookup_payment("pi_anything")
    assert (err.value.code, err.value.retryable, err.value.http_status) == (
        ErrorCode.PSP_AUTH_FAILED,
        False,
        401,
    )
    assert err.value.psp_request_id is not None


def test_unreachable_psp_is_unavailable_and_retryable() -> None:
    adapter = StripeAdapter("sk_test_x", "http://127.0.0.1:9", WEBHOOK_SECRET, timeout_seconds=2)
    with pytest.raises(PspError) as err:
        adapter.lookup_payment("pi_anything")
    assert (err.value.code, err.value.retryable, err.value.http_status) == (
        ErrorCode.PSP_UNAVAILABLE,
        True,
        None,
    )


def test_plain_500_is_retryable_with_the_same_key(
    stripe_adapter: StripeAdapter, sandbox_control: SandboxControl
) -> None:
    payment = sandbox_control.seed_stripe_payment(amount=5_000, currency="EUR")
    call = make_call(stripe_adapter, payment, 100)
    sandbox_control.inject_fault("error_500", path_prefix="/v1/refunds", method="POST")
    with pytest.raises(PspError) as err:
        stripe_adapter.refund(call)
    assert (err.value.code, err.value.retryable, err.value.key_poisoned, err.value.http_status) == (
        ErrorCode.PSP_UNAVAILABLE,
        True,
        False,
        500,
    )
    assert stripe_adapter.refund(call).status is PspRefundStatus.SUCCEEDED


def test_replayed_500_poisons_the_key_and_the_next_generation_refunds(
    stripe_adapter: StripeAdapter, sandbox_control: SandboxControl
) -> None:
    payment = sandbox_control.seed_stripe_payment(amount=5_000, currency="EUR")
    call = make_call(stripe_adapter, payment, 100)
    sandbox_control.inject_fault("error_500_stored", path_prefix="/v1/refunds", method="POST")

    with pytest.raises(PspError) as first:
        stripe_adapter.refund(call)
    assert (first.value.retryable, first.value.key_poisoned) == (True, False)
    with pytest.raises(PspError) as replayed:
        stripe_adapter.refund(call)
    assert (replayed.value.code, replayed.value.retryable, replayed.value.key_poisoned) == (
        ErrorCode.PSP_UNAVAILABLE,
        False,
        True,
    )

    assert stripe_adapter.find_refund(call) is None
    next_generation = call.model_copy(update={"key_generation": 2})
    result = stripe_adapter.refund(next_generation)
    assert result.status is PspRefundStatus.SUCCEEDED
    [made] = sandbox_control.stripe_refunds(payment)
    assert made["idempotency_key"] == f"refund:{call.request_id}:2"


def test_lost_response_is_retryable_and_the_refund_is_found(
    stripe_adapter: StripeAdapter, sandbox_control: SandboxControl
) -> None:
    payment = sandbox_control.seed_stripe_payment(amount=5_000, currency="EUR")
    call = make_call(stripe_adapter, payment, 700)
    sandbox_control.inject_fault("lose_response", path_prefix="/v1/refunds", method="POST")
    with pytest.raises(PspError) as err:
        stripe_adapter.refund(call)
    assert (err.value.code, err.value.retryable, err.value.http_status) == (
        ErrorCode.PSP_UNAVAILABLE,
        True,
        None,
    )
    found = stripe_adapter.find_refund(call)
    assert found is not None and found.adopted
    assert stripe_adapter.refund(call).psp_refund_id == found.psp_refund_id
    assert len(sandbox_control.stripe_refunds(payment)) == 1


def test_key_in_use_is_psp_busy(stripe_adapter: StripeAdapter, sandbox_control: SandboxControl) -> None:
    payment = sandbox_control.seed_stripe_payment(amount=5_000, currency="EUR")
    call = make_call(stripe_adapter, payment, 100)
    sandbox_control.inject_fault("slow", path_prefix="/v1/refunds", method="POST", delay_ms=600)
    first = threading.Thread(target=stripe_adapter.refund, args=(call,))
    first.start()
    key = idempotency_key(call.request_id, 1)
    eventually(lambda: key in sandbox_control.stats()["executing"])
    with pytest.raises(PspError) as err:
        stripe_adapter.refund(call)
    assert (err.value.code, err.value.retryable, err.value.http_status) == (
        ErrorCode.PSP_BUSY,
        True,
        409,
    )
    first.join(5)
    assert len(sandbox_control.stripe_refunds(payment)) == 1


def test_same_key_other_amount_is_an_idempotency_conflict(
    stripe_adapter: StripeAdapter, sandbox_control: SandboxControl
) -> None:
    payment = sandbox_control.seed_stripe_payment(amount=5_000, currency="EUR")
    call = make_call(stripe_adapter, payment, 100)
    stripe_adapter.refund(call)
    with pytest.raises(PspError) as err:
        stripe_adapter.refund(call.model_copy(update={"amount": Money(value=200, currency="EUR")}))
    assert (err.value.code, err.value.retryable, err.value.http_status) == (
        ErrorCode.IDEMPOTENCY_CONFLICT,
        False,
        400,
    )


# voids and search -------------------------------------------------------------------------------


def test_void_of_an_authorised_intent(stripe_adapter: StripeAdapter, sandbox_control: SandboxControl) -> None:
    payment = sandbox_control.seed_stripe_payment(amount=8_000, currency="EUR", captured=False)
    call = make_call(stripe_adapter, payment, 8_000, method=RefundMethod.VOID)
    assert stripe_adapter.find_refund(call) is None

    result = stripe_adapter.refund(call)
    assert (result.status, result.method, result.psp_refund_id, result.amount.value) == (
        PspRefundStatus.SUCCEEDED,
        RefundMethod.VOID,
        payment,
        8_000,
    )
    found = stripe_adapter.find_refund(call.model_copy(update={"key_generation": 2}))
    assert found is not None and (found.adopted, found.method, found.psp_refund_id) == (
        True,
        RefundMethod.VOID,
        payment,
    )
    polled = stripe_adapter.get_refund(payment, call.request_id)
    assert (polled.status, polled.method) == (PspRefundStatus.SUCCEEDED, RefundMethod.VOID)
    assert sandbox_control.stripe_refunds(payment) == []


def test_void_by_charge_reference_and_void_of_a_captured_payment(
    stripe_adapter: StripeAdapter, sandbox_control: SandboxControl
) -> None:
    authorised = sandbox_control.seed_stripe_payment(amount=800, currency="EUR", captured=False)
    charge = stripe_adapter._client.v1.payment_intents.retrieve(authorised).latest_charge
    call = make_call(stripe_adapter, str(charge), 800, method=RefundMethod.VOID)
    assert stripe_adapter.refund(call).psp_refund_id == authorised

    captured = sandbox_control.seed_stripe_payment(amount=800, currency="EUR")
    result = stripe_adapter.refund(make_call(stripe_adapter, captured, 800, method=RefundMethod.VOID))
    assert (result.status, result.failure_code) == (PspRefundStatus.FAILED, ErrorCode.PSP_DECLINED)


def test_find_refund_adopts_a_refund_of_an_earlier_key_generation_across_pages(
    stripe_adapter: StripeAdapter, sandbox_control: SandboxControl, monkeypatch: pytest.MonkeyPatch
) -> None:
    payment = sandbox_control.seed_stripe_payment(amount=10_000, currency="EUR")
    call = make_call(stripe_adapter, payment, 1_000)
    made = stripe_adapter.refund(call)
    for _ in range(4):  # newer refunds for other requests push ours to a later page
        stripe_adapter.refund(make_call(stripe_adapter, payment, 100))
    monkeypatch.setattr(stripe_adapter, "list_page_size", 2)

    found = stripe_adapter.find_refund(call.model_copy(update={"key_generation": 2}))

    assert found is not None
    assert (found.psp_refund_id, found.adopted, found.status, found.amount.value) == (
        made.psp_refund_id,
        True,
        PspRefundStatus.SUCCEEDED,
        1_000,
    )
    assert stripe_adapter.find_refund(make_call(stripe_adapter, payment, 1)) is None
    assert len(sandbox_control.stripe_refunds(payment)) == 5


# webhooks ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("behavior", "final_type", "final_status", "failure"),
    [
        ("pending_then_succeeded", "refund.updated", PspRefundStatus.SUCCEEDED, None),
        ("pending_then_failed", "refund.failed", PspRefundStatus.FAILED, ErrorCode.PSP_DECLINED),
    ],
)
def test_sandbox_webhooks_parse_into_refund_updates(
    stripe_adapter: StripeAdapter,
    sandbox_control: SandboxControl,
    webhook_receiver: WebhookReceiver,
    behavior: RefundBehavior,
    final_type: str,
    final_status: PspRefundStatus,
    failure: ErrorCode | None,
) -> None:
    payment = sandbox_control.seed_stripe_payment(
        amount=3_000,
        currency="EUR",
        refund_behavior=behavior,
        settle_after_ms=50,
    )
    call = make_call(stripe_adapter, payment, 3_000)
    refund_id = str(stripe_adapter.refund(call).psp_refund_id)

    deliveries = eventually(lambda: len(d := webhook_receiver.matching(refund_id)) == 2 and d)
    events = [e for d in deliveries for e in stripe_adapter.parse_webhook(d.body, d.headers)]

    assert [(e.raw_type, e.kind) for e in events] == [
        ("refund.created", "ignored"),
        (final_type, "refund_update"),
    ]
    assert events[-1].request_id == call.request_id
    updates = [e.update for e in events]
    assert [u.status for u in updates if u] == [final_status]
    last = updates[-1]
    assert last is not None
    assert (last.psp_refund_id, last.failure_code, last.psp_event_id) == (
        refund_id,
        failure,
        events[-1].event_id,
    )
    if failure is not None:
        assert last.failure_message == "insufficient_funds"


def test_forged_stale_missing_and_malformed_webhooks_are_rejected(
    stripe_adapter: StripeAdapter,
) -> None:
    event = refund_event("refund.updated", "succeeded", {"refund_request_id": "r-1"})
    body, headers = signed(event, secret="whsec_someone_else")
    with pytest.raises(WebhookRejected) as err:
        stripe_adapter.parse_webhook(body, headers)
    assert err.value.code == "signature_invalid"

    body, headers = signed(event)
    with pytest.raises(WebhookRejected) as err:
        stripe_adapter.parse_webhook(body.replace(b"succeeded", b"failed"), headers)
    assert err.value.code == "signature_invalid"

    body, headers = signed(event, age=600)
    with pytest.raises(WebhookRejected) as err:
        stripe_adapter.parse_webhook(body, headers)
    assert err.value.code == "signature_expired"

    with pytest.raises(WebhookRejected) as err:
        stripe_adapter.parse_webhook(body, {})
    assert err.value.code == "signature_missing"

    header = stripe.WebhookSignature.generate_signature_header("{not json", WEBHOOK_SECRET)
    with pytest.raises(WebhookRejected) as err:
        stripe_adapter.parse_webhook(b"{not json", {"Stripe-Signature": header})
    assert err.value.code == "invalid_payload"


def test_other_events_are_ignored_explicitly(stripe_adapter: StripeAdapter) -> None:
    other = {"id": "evt_other", "object": "event", "type": "customer.created", "data": {"object": {}}}
    foreign = refund_event("refund.updated", "succeeded", {})
    ours = refund_event("charge.refund.updated", "succeeded", {"refund_request_id": "r-9"})
    kinds = []
    for payload in (other, foreign, ours):
        body, headers = signed(payload)
        [event] = stripe_adapter.parse_webhook(body, {"STRIPE-SIGNATURE": headers["stripe-signature"]})
        kinds.append((event.kind, event.request_id))
    # a refund we did not make is reported (request id None) so it can be adopted into the books
    assert kinds == [("ignored", None), ("refund_update", None), ("refund_update", "r-9")]


def test_a_dispute_holds_both_the_charge_and_its_intent(stripe_adapter: StripeAdapter) -> None:
    dispute = {
        "id": "dp_1",
        "object": "dispute",
        "charge": "ch_1",
        "payment_intent": "pi_1",
        "reason": "fraudulent",
    }
    payload = {
        "id": "evt_dp",
        "object": "event",
        "type": "charge.dispute.created",
        "data": {"object": dispute},
    }
    body, headers = signed(payload)
    events = stripe_adapter.parse_webhook(body, {"Stripe-Signature": headers["stripe-signature"]})
    assert [(e.kind, e.payment_reference, e.detail["reason"]) for e in events] == [
        ("dispute_opened", "pi_1", "fraudulent"),
        ("dispute_opened", "ch_1", "fraudulent"),
    ]


# transformers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stripe_status", "ours"),
    [
        ("pending", PspRefundStatus.PENDING),
        ("requires_action", PspRefundStatus.PENDING),
        ("succeeded", PspRefundStatus.SUCCEEDED),
        ("failed", PspRefundStatus.FAILED),
        ("canceled", PspRefundStatus.FAILED),
        ("something_new", PspRefundStatus.PENDING),
    ],
)
def test_refund_status_mapping(stripe_status: str, ours: PspRefundStatus) -> None:
    assert tf.refund_status(stripe_status) is ours


@pytest.mark.parametrize(
    ("value", "currency", "stripe_amount"),
    [
        (1_250, "EUR", 1_250),
        (500, "JPY", 500),
        (5, "ISK", 500),  # Stripe wants ISK with two decimals that are always 00
        (12_300, "MGA", 123),  # zero-decimal at Stripe, two at ISO
        (12_345, "MGA", None),
        (1_230, "KWD", 1_230),
        (1_235, "KWD", None),  # three-decimal currencies must end in 0 at Stripe
    ],
)
def test_amounts_follow_stripe_currency_exponents(
    value: int, currency: str, stripe_amount: int | None
) -> None:
    money = Money(value=value, currency=currency)
    assert tf.to_stripe_amount(money) == stripe_amount
    if stripe_amount is not None:
        assert tf.from_stripe_amount(stripe_amount, currency) == value


def test_unrepresentable_amount_fails_without_calling_stripe(
    stripe_adapter: StripeAdapter, sandbox_control: SandboxControl
) -> None:
    payment = sandbox_control.seed_stripe_payment(amount=10_000, currency="KWD")
    result = stripe_adapter.refund(make_call(stripe_adapter, payment, 1_235, currency="KWD"))
    assert (result.status, result.failure_code) == (PspRefundStatus.FAILED, ErrorCode.INVALID_AMOUNT)
    assert sandbox_control.stripe_refunds(payment) == []
