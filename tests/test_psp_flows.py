"""The whole pipeline through Adyen and PayPal: their official SDKs over HTTP to the sandboxes,
their signed notifications back to /webhooks/<psp>, the same exactly-once and ledger guarantees."""

from __future__ import annotations

import asyncio

import pytest

from adapters.db import holds, ledger
from adapters.db.payment_book import DatabasePaymentBook
from domain.status import Provider
from sandbox.adyen.control import AdyenSandboxControl
from sandbox.faults import FaultKind
from sandbox.paypal.control import PayPalSandboxControl
from tests.conftest import Stack
from tests.flows import known_adyen_payment, refund_through_pipeline, submit, wait_for_status
from tests.helpers import eventually, refund_body, unique


def assert_books_balanced(stack: Stack, request_id: str, amount: int) -> None:
    with stack.database.transaction() as session:
        assert sorted(ledger.balances(session, request_id).values()) == [-amount, amount]


async def test_adyen_refund_is_confirmed_by_its_signed_notification(
    stack: Stack, adyen: AdyenSandboxControl
) -> None:
    reference = await known_adyen_payment(stack, adyen, 10_000)

    view = await refund_through_pipeline(stack, reference, amount=2_500, provider="adyen")

    assert (view["status"], view["method"]) == ("succeeded", "refund")
    assert "psp_confirmed" in [e["step"] for e in view["audit"]]
    assert [(m["kind"], m["amount"]) for m in adyen.modifications(reference)] == [("refund", 2_500)]
    assert_books_balanced(stack, view["request_id"], 2_500)


async def test_adyen_refusal_arrives_as_a_failed_notification(
    stack: Stack, adyen: AdyenSandboxControl
) -> None:
    """Someone refunded most of it in Adyen's Customer Area: Adyen accepts our call, then says no."""
    reference = await known_adyen_payment(stack, adyen, 1_000)
    first = await refund_through_pipeline(stack, reference, amount=800, provider="adyen")
    assert first["status"] == "succeeded"

    book = DatabasePaymentBook(stack.database)
    assert book.get(Provider.ADYEN, reference) is not None
    # our own guard refuses without calling Adyen
    second = await refund_through_pipeline(stack, reference, amount=800, provider="adyen")
    assert (second["status"], second["failure_code"]) == ("failed", "refund_exceeds_capture")
    assert len(adyen.modifications(reference)) == 1


async def test_adyen_authorisation_is_cancelled(stack: Stack, adyen: AdyenSandboxControl) -> None:
    reference = await known_adyen_payment(stack, adyen, 4_000, captured=False)
    view = await refund_through_pipeline(stack, reference, provider="adyen")
    assert (view["status"], view["method"]) == ("succeeded", "void")
    assert [m["kind"] for m in adyen.modifications(reference)] == ["cancel"]


async def test_unknown_adyen_payment_fails_without_a_call(stack: Stack) -> None:
    view = await refund_through_pipeline(stack, unique("NOTKNOWN"), amount=100, provider="adyen")
    assert (view["status"], view["failure_code"]) == ("failed", "payment_not_found")


async def test_paypal_refund_of_a_capture(stack: Stack, paypal: PayPalSandboxControl) -> None:
    capture = paypal.seed_capture(amount="50.00", currency="EUR")

    view = await refund_through_pipeline(stack, capture, amount=1_250, provider="paypal")

    assert (view["status"], view["amount"]) == ("succeeded", {"value": 1_250, "currency": "EUR"})
    [refund] = paypal.refunds(capture)
    assert refund["id"] == view["psp_refund_id"]
    assert_books_balanced(stack, view["request_id"], 1_250)


async def test_paypal_lost_response_refunds_once(stack: Stack, paypal: PayPalSandboxControl) -> None:
    capture = paypal.seed_capture(amount="30.00", currency="EUR")
    paypal.inject_fault("lose_response", count=1, path_prefix="/v2/payments/captures", method="POST")

    view = await refund_through_pipeline(stack, capture, amount=1_000, provider="paypal")

    assert view["status"] == "succeeded"
    assert len(paypal.refunds(capture)) == 1


async def test_paypal_pending_refund_completes_by_signed_webhook(
    stack: Stack, paypal: PayPalSandboxControl
) -> None:
    capture = paypal.seed_capture(
        amount="20.00", currency="EUR", refund_behavior="pending_then_completed", settle_after_ms=200
    )
    view = await refund_through_pipeline(stack, capture, amount=500, provider="paypal")
    assert view["status"] == "succeeded"
    confirmed = next(e for e in view["audit"] if e["step"] == "psp_confirmed")
    assert confirmed["detail"]["psp_event_id"] != "poll"


async def test_paypal_authorisation_is_voided(stack: Stack, paypal: PayPalSandboxControl) -> None:
    authorization = paypal.seed_authorization(amount="15.00", currency="EUR")
    view = await refund_through_pipeline(stack, authorization, provider="paypal")
    assert (view["status"], view["method"]) == ("succeeded", "void")


async def test_adyen_refund_failed_after_success_is_reversed(
    stack: Stack, adyen: AdyenSandboxControl
) -> None:
    reference = await known_adyen_payment(stack, adyen, 6_000)
    view = await refund_through_pipeline(stack, reference, amount=2_000, provider="adyen")
    assert view["status"] == "succeeded"

    adyen.fail_refund_late(view["psp_refund_id"])

    failed = await wait_for_status(stack, view["request_id"], {"failed"})
    assert "late_failure_reversed" in [e["step"] for e in failed["audit"]]
    await eventually(lambda: _books_net_zero(stack, view["request_id"]), bool)


async def _books_net_zero(stack: Stack, request_id: str) -> bool:
    with stack.database.transaction() as session:
        return ledger.balances(session, request_id) == {}


async def test_adyen_chargeback_holds_the_payment(stack: Stack, adyen: AdyenSandboxControl) -> None:
    reference = await known_adyen_payment(stack, adyen, 6_000)
    adyen.chargeback(reference)
    request_id = unique("cb")

    async def held() -> bool:
        with stack.database.transaction() as session:
            return holds.held(session, Provider.ADYEN, reference) is not None

    await eventually(held, bool)
    await submit(stack, refund_body(request_id, reference, amount=1_000, provider="adyen"))

    view = await wait_for_status(stack, request_id, {"needs_attention"})
    assert view["failure_code"] == "payment_disputed"
    assert adyen.modifications(reference) == []


@pytest.mark.parametrize("taken_back", ["dispute", "capture_reversed"])
async def test_a_paypal_dispute_or_reversal_holds_the_capture(
    stack: Stack, paypal: PayPalSandboxControl, taken_back: str
) -> None:
    """A dispute, or PayPal taking the capture's money back, blocks refunds until ops decide."""
    capture = paypal.seed_capture(amount="45.00", currency="EUR")
    if taken_back == "dispute":
        paypal.open_dispute(capture)
    else:
        paypal.reverse_capture(capture)

    async def held() -> bool:
        with stack.database.transaction() as session:
            return holds.held(session, Provider.PAYPAL, capture) is not None

    await eventually(held, bool)
    request_id = unique("held")
    await submit(stack, refund_body(request_id, capture, amount=1_000, provider="paypal"))
    view = await wait_for_status(stack, request_id, {"needs_attention"})
    assert view["failure_code"] == "payment_disputed"
    assert [r for r in paypal.refunds(capture) if r["kind"] == "refund"] == []


@pytest.mark.parametrize(
    ("fault", "count"), [("error_500", 3), ("rate_limit", 1), ("lose_response", 1), ("slow", 1)]
)
async def test_adyen_faults_are_retried_under_one_key_and_refund_once(
    stack: Stack, adyen: AdyenSandboxControl, fault: FaultKind, count: int
) -> None:
    reference = await known_adyen_payment(stack, adyen, 3_000)
    adyen.inject_fault(fault, count=count, retry_after=0.2, delay_ms=300)

    view = await refund_through_pipeline(stack, reference, amount=1_200, provider="adyen")

    assert view["status"] == "succeeded"
    [refund] = adyen.modifications(reference)
    assert (refund["kind"], refund["amount"], refund["idempotency_key"]) == (
        "refund",
        1_200,
        f"refund:{view['request_id']}",
    )
    assert_books_balanced(stack, view["request_id"], 1_200)


@pytest.mark.parametrize(("fault", "count"), [("error_500", 3), ("rate_limit", 1)])
async def test_paypal_faults_are_retried_under_one_request_id_and_refund_once(
    stack: Stack, paypal: PayPalSandboxControl, fault: FaultKind, count: int
) -> None:
    capture = paypal.seed_capture(amount="25.00", currency="EUR")
    paypal.inject_fault(fault, count=count, method="POST", retry_after=0.2)

    view = await refund_through_pipeline(stack, capture, amount=700, provider="paypal")

    assert view["status"] == "succeeded"
    [refund] = paypal.refunds(capture)
    assert refund["paypal_request_id"] == f"refund:{view['request_id']}"
    assert_books_balanced(stack, view["request_id"], 700)


@pytest.mark.parametrize("provider", ["adyen", "paypal"])
async def test_a_duplicate_request_refunds_once_at_every_psp(
    stack: Stack, adyen: AdyenSandboxControl, paypal: PayPalSandboxControl, provider: str
) -> None:
    if provider == "adyen":
        payment = await known_adyen_payment(stack, adyen, 2_000)
    else:
        payment = paypal.seed_capture(amount="20.00", currency="EUR")
    request_id = unique("dup")
    body = refund_body(request_id, payment, amount=500, provider=provider)

    first, second = await asyncio.gather(submit(stack, body), submit(stack, body))
    assert sorted([first.status_code, second.status_code]) in ([200, 202], [202, 202])
    view = await wait_for_status(stack, request_id, {"succeeded"})
    again = await submit(stack, body)
    assert again.status_code == 200

    made = adyen.modifications(payment) if provider == "adyen" else paypal.refunds(payment)
    assert len(made) == 1
    assert_books_balanced(stack, view["request_id"], 500)
