"""End to end: signed request → service → workflow → Stripe SDK → sandbox → webhook → ledger."""

from __future__ import annotations

import asyncio

import pytest

from adapters.db import ledger
from sandbox.stripe.control import SandboxControl
from tests.conftest import Stack, starter_for, worker_for
from tests.flows import FINAL, refund_through_pipeline, reservation_state, submit, wait_for_status
from tests.helpers import refund_body, signed_headers, unique
from workflows.refund import RefundWorkflow


async def test_happy_path_refunds_once_posts_ledger_and_audits(stack: Stack, sandbox: SandboxControl) -> None:
    payment = sandbox.seed_stripe_payment(amount=10_000, currency="EUR")
    request_id = unique("req")
    body = refund_body(request_id, payment, amount=2_500)

    response = await submit(stack, body)

    assert response.status_code == 202
    assert response.json() == {
        "request_id": request_id,
        "workflow_id": f"refund-{request_id}",
        "status": "received",
    }
    view = await wait_for_status(stack, request_id, FINAL)
    assert view["status"] == "succeeded"
    assert view["method"] == "refund"
    assert view["amount"] == {"value": 2_500, "currency": "EUR"}
    refunds = sandbox.stripe_refunds(payment)
    assert [(r["id"], r["amount"]) for r in refunds] == [(view["psp_refund_id"], 2_500)]
    assert view["risk"]["requires_review"] is False and view["risk"]["reasons"]
    steps = [entry["step"] for entry in view["audit"]]
    for step in (
        "payment_looked_up",
        "validated",
        "risk_scored",
        "amount_reserved",
        "psp_refund_requested",
        "reservation_committed",
        "ledger_posted",
    ):
        assert step in steps, steps
    assert [s for s in steps if s != "status_changed"] == [
        "payment_looked_up",
        "validated",
        "risk_scored",
        "amount_reserved",
        "psp_refund_requested",
        "reservation_committed",
        "ledger_posted",
    ]
    transitions = [(e["status_before"], e["status_after"]) for e in view["audit"] if e["status_after"]]
    assert transitions == [
        ("received", "validating"),
        ("validating", "scoring"),
        ("scoring", "refunding"),
        ("refunding", "succeeded"),
    ]
    psp_row = next(e for e in view["audit"] if e["step"] == "psp_refund_requested")
    assert psp_row["psp_request_id"] and psp_row["psp_response_ms"] is not None
    assert all(e["original_reference"] == payment for e in view["audit"])
    with stack.database.transaction() as session:
        balances = ledger.balances(session, request_id)
    assert sum(balances.values()) == 0
    assert sorted(balances.values()) == [-2_500, 2_500]
    assert reservation_state(stack, request_id) == "committed"


async def test_omitted_amount_refunds_everything_still_refundable(
    stack: Stack, sandbox: SandboxControl
) -> None:
    payment = sandbox.seed_stripe_payment(amount=4_000, currency="EUR")
    first = await refund_through_pipeline(stack, payment, amount=1_000)
    rest = await refund_through_pipeline(stack, payment)
    assert (first["status"], rest["status"]) == ("succeeded", "succeeded")
    assert rest["amount"] == {"value": 3_000, "currency": "EUR"}
    assert sorted(r["amount"] for r in sandbox.stripe_refunds(payment)) == [1_000, 3_000]


async def test_duplicate_request_answers_same_workflow_and_refunds_once(
    stack: Stack, sandbox: SandboxControl
) -> None:
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    request_id = unique("req")
    body = refund_body(request_id, payment, amount=1_000)

    first = await submit(stack, body)
    second = await submit(stack, body)
    await wait_for_status(stack, request_id, FINAL)
    third = await submit(stack, body)

    assert first.status_code == 202
    assert second.status_code == 200 and third.status_code == 200
    assert {r.json()["workflow_id"] for r in (first, second, third)} == {f"refund-{request_id}"}
    assert third.json()["status"] == "succeeded"
    assert len(sandbox.stripe_refunds(payment)) == 1


async def test_lost_response_after_commit_refunds_exactly_once(stack: Stack, sandbox: SandboxControl) -> None:
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    sandbox.inject_fault("lose_response", count=1, path_prefix="/v1/refunds", method="POST")

    view = await refund_through_pipeline(stack, payment, amount=1_200)

    assert view["status"] == "succeeded"
    refunds = sandbox.stripe_refunds(payment)
    assert len(refunds) == 1 and refunds[0]["id"] == view["psp_refund_id"]
    steps = [e["step"] for e in view["audit"]]
    assert "psp_refund_error" in steps and "psp_refund_adopted" in steps


async def test_5xx_three_times_then_success(stack: Stack, sandbox: SandboxControl) -> None:
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    sandbox.inject_fault("error_500", count=3, path_prefix="/v1/refunds", method="POST")

    view = await refund_through_pipeline(stack, payment, amount=700)

    assert view["status"] == "succeeded"
    assert len(sandbox.stripe_refunds(payment)) == 1
    errors = [e for e in view["audit"] if e["step"] == "psp_refund_error"]
    assert [e["reason_code"] for e in errors] == ["psp_unavailable"] * 3
    assert view["key_generation"] == 1


async def test_replayed_500_searches_then_rotates_key_and_refunds_once(
    stack: Stack, sandbox: SandboxControl
) -> None:
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    sandbox.inject_fault("error_500_stored", count=1, path_prefix="/v1/refunds", method="POST")

    view = await refund_through_pipeline(stack, payment, amount=900)

    assert view["status"] == "succeeded"
    assert view["key_generation"] == 2
    refunds = sandbox.stripe_refunds(payment)
    assert len(refunds) == 1 and refunds[0]["metadata"]["key_generation"] == "2"
    assert "idempotency_key_rotated" in [e["step"] for e in view["audit"]]


async def test_rate_limited_then_success(stack: Stack, sandbox: SandboxControl) -> None:
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    sandbox.inject_fault("rate_limit", count=1, path_prefix="/v1/refunds", method="POST", retry_after=1)

    view = await refund_through_pipeline(stack, payment, amount=300)

    assert view["status"] == "succeeded"
    assert len(sandbox.stripe_refunds(payment)) == 1
    assert "psp_rate_limited" in [e["reason_code"] for e in view["audit"]]


async def test_unknown_payment_fails_without_a_psp_refund(stack: Stack) -> None:
    view = await refund_through_pipeline(stack, "pi_doesnotexist", amount=100)
    assert view["status"] == "failed"
    assert view["failure_code"] == "payment_not_found"
    assert view["psp_refund_id"] is None


async def test_currency_mismatch_fails_without_a_psp_refund(stack: Stack, sandbox: SandboxControl) -> None:
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    view = await refund_through_pipeline(stack, payment, amount=100, currency="USD")
    assert (view["status"], view["failure_code"]) == ("failed", "currency_mismatch")
    assert sandbox.stripe_refunds(payment) == []


async def test_over_refund_fails_without_a_psp_call(stack: Stack, sandbox: SandboxControl) -> None:
    payment = sandbox.seed_stripe_payment(amount=1_000, currency="EUR")
    view = await refund_through_pipeline(stack, payment, amount=1_001)
    assert (view["status"], view["failure_code"]) == ("failed", "refund_exceeds_capture")
    assert sandbox.stripe_refunds(payment) == []


async def test_concurrent_partials_never_exceed_the_capture(stack: Stack, sandbox: SandboxControl) -> None:
    payment = sandbox.seed_stripe_payment(amount=1_000, currency="EUR")
    ids = [unique("req") for _ in range(2)]
    for request_id in ids:
        response = await submit(stack, refund_body(request_id, payment, amount=600))
        assert response.status_code == 202

    views = [await wait_for_status(stack, request_id, FINAL) for request_id in ids]

    assert sorted(v["status"] for v in views) == ["failed", "succeeded"]
    failed = next(v for v in views if v["status"] == "failed")
    assert failed["failure_code"] == "refund_exceeds_capture"
    assert [r["amount"] for r in sandbox.stripe_refunds(payment)] == [600]


async def test_twenty_concurrent_partials_through_the_pipeline_never_exceed_the_capture(
    stack: Stack, sandbox: SandboxControl
) -> None:
    payment = sandbox.seed_stripe_payment(amount=10_000, currency="EUR")
    ids = [unique("burst") for _ in range(20)]
    responses = await asyncio.gather(
        *(submit(stack, refund_body(request_id, payment, amount=700)) for request_id in ids)
    )
    assert [r.status_code for r in responses] == [202] * 20

    views = await asyncio.gather(*(wait_for_status(stack, request_id, FINAL) for request_id in ids))

    outcomes = sorted((v["status"], v.get("failure_code")) for v in views)
    assert outcomes == [("failed", "refund_exceeds_capture")] * 6 + [("succeeded", None)] * 14
    assert sum(r["amount"] for r in sandbox.stripe_refunds(payment)) == 14 * 700 <= 10_000


async def test_uncaptured_authorisation_is_voided(stack: Stack, sandbox: SandboxControl) -> None:
    payment = sandbox.seed_stripe_payment(amount=8_000, currency="EUR", captured=False)
    view = await refund_through_pipeline(stack, payment)
    assert (view["status"], view["method"]) == ("succeeded", "void")
    assert sandbox.stripe_refunds(payment) == []
    assert "psp_void_requested" in [e["step"] for e in view["audit"]]


async def test_partial_refund_of_uncaptured_authorisation_is_refused(
    stack: Stack, sandbox: SandboxControl
) -> None:
    payment = sandbox.seed_stripe_payment(amount=8_000, currency="EUR", captured=False)
    view = await refund_through_pipeline(stack, payment, amount=1_000)
    assert (view["status"], view["failure_code"]) == ("failed", "payment_not_refundable")


@pytest.mark.parametrize(
    ("behaviour", "status", "reservation"),
    [
        ("pending_then_succeeded", "succeeded", "committed"),
        ("pending_then_failed", "failed", "released"),
    ],
)
async def test_pending_refund_waits_for_the_signed_webhook(
    stack: Stack, sandbox: SandboxControl, behaviour: str, status: str, reservation: str
) -> None:
    payment = sandbox.seed_stripe_payment(
        amount=5_000, currency="EUR", refund_behavior=behaviour, settle_after_ms=300
    )
    request_id = unique("req")
    await submit(stack, refund_body(request_id, payment, amount=1_500))

    view = await wait_for_status(stack, request_id, FINAL)

    assert view["status"] == status
    confirmed = next(e for e in view["audit"] if e["step"] == "psp_confirmed")
    assert confirmed["detail"]["psp_event_id"].startswith("evt_")
    assert reservation_state(stack, request_id) == reservation
    if status == "failed":
        with stack.database.transaction() as session:
            assert ledger.balances(session, request_id) == {}


async def test_unconfigured_provider_fails_cleanly(stack: Stack) -> None:
    request_id = unique("noadyen")
    body = refund_body(request_id, "psp_ref_1", amount=100, provider="adyen")
    handle = stack.client.get_workflow_handle_for(RefundWorkflow.run, f"refund-{request_id}")
    async with starter_for(stack, adyen_api_key="") as (settings, http), worker_for(stack, settings):
        assert (
            await http.post("/v1/refund-requests", content=body, headers=signed_headers(body))
        ).status_code == 202
        state = await handle.result()
    assert (state.status.value, state.failure_code) == ("failed", "provider_not_configured")


async def test_payment_lookup_outage_is_retried(stack: Stack, sandbox: SandboxControl) -> None:
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    sandbox.inject_fault("error_500", count=2, path_prefix="/v1/payment_intents", method="GET")

    view = await refund_through_pipeline(stack, payment, amount=500)

    assert view["status"] == "succeeded"
    assert len(sandbox.stripe_refunds(payment)) == 1
