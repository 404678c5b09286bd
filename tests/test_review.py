"""Human review: large refunds wait; ops approve or reject through the CLI and over HTTP."""

from __future__ import annotations

from typing import Any

import stripe

from sandbox.stripe.control import SandboxControl
from tests.conftest import Stack
from tests.flows import FINAL, cli, large_refund_awaiting_review, wait_for_status
from tests.helpers import eventually, refund_body, signed_headers, unique


async def test_cli_lists_pending_and_approves(stack: Stack, sandbox: SandboxControl) -> None:
    request_id, payment = await large_refund_awaiting_review(stack, sandbox)

    async def pending() -> str:
        return (await cli(stack, "pending")).stdout

    listing = await eventually(pending, lambda out: request_id in out)
    assert "1500.00 EUR" in listing
    row = next(line for line in listing.splitlines() if request_id in line)
    assert "review_threshold" in row and "0/1" in row  # reasons and approvals from the workflow

    anonymous = await cli(stack, "approve", request_id)
    assert (anonymous.returncode, "unauthorized" in anonymous.stderr) == (2, True)
    mixed_up = await cli(
        stack, "approve", request_id, "--reviewer", "bob", REFUNDS_REVIEWER_TOKEN="alice-token"
    )
    assert (mixed_up.returncode, "not bob's" in mixed_up.stderr) == (2, True)
    approved = await cli(stack, "approve", request_id, REFUNDS_REVIEWER_TOKEN="alice-token")  # configured
    assert approved.returncode == 0, approved.stderr

    view = await wait_for_status(stack, request_id, FINAL)
    assert view["status"] == "succeeded"
    assert view["review"]["reviewer"] == "alice" and view["review"]["approved"] is True
    decided = next(e for e in view["audit"] if e["step"] == "review_decided")
    assert decided["actor"] == "reviewer:alice"
    assert len(sandbox.stripe_refunds(payment)) == 1

    status = await cli(stack, "status", request_id)
    assert "succeeded" in status.stdout and "review_decided" in status.stdout


async def test_cli_reject_moves_no_money(stack: Stack, sandbox: SandboxControl) -> None:
    request_id, payment = await large_refund_awaiting_review(stack, sandbox)

    missing_reason = await cli(stack, "reject", request_id, "--token", "bob-token", "--reason", " ")
    assert missing_reason.returncode == 1 and "invalid_request" in missing_reason.stderr

    rejected = await cli(stack, "reject", request_id, "--token", "bob-token", "--reason", "known abuser")
    assert rejected.returncode == 0, rejected.stderr
    assert f"{request_id}: rejected" in rejected.stdout  # the state the decision left, not the review

    view = await wait_for_status(stack, request_id, FINAL)
    assert (view["status"], view["failure_code"]) == ("rejected", "review_rejected")
    assert view["review"] == {
        **view["review"],
        "approved": False,
        "reviewer": "bob",
        "reason": "known abuser",
    }
    assert sandbox.stripe_refunds(payment) == []

    again = await cli(stack, "approve", request_id, "--token", "alice-token")
    retried = await cli(stack, "retry", request_id, "--operator", "ops-ann")
    assert again.returncode == retried.returncode == 1
    assert f"already_finished: refund {request_id} already finished (rejected)" in again.stderr
    assert f"already_finished: refund {request_id} already finished (rejected)" in retried.stderr


async def review(stack: Stack, request_id: str, action: str, token: str | None, **body: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await stack.http.post(f"/v1/refunds/{request_id}/{action}", json=body or None, headers=headers)


async def test_http_review_needs_an_authenticated_reviewer(stack: Stack, sandbox: SandboxControl) -> None:
    request_id, payment = await large_refund_awaiting_review(stack, sandbox)

    anonymous = await review(stack, request_id, "approve", None)
    forged = await review(stack, request_id, "approve", "not-a-token")
    assert (anonymous.status_code, forged.status_code) == (401, 401)
    assert anonymous.json()["error"]["code"] == "unauthorized"

    approved = await review(stack, request_id, "approve", "alice-token")
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] != "awaiting_review"  # where the approval sent it
    view = await wait_for_status(stack, request_id, FINAL)
    assert view["status"] == "succeeded" and view["review"]["reviewer"] == "alice"

    late = await review(stack, request_id, "reject", "bob-token", reason="too late")
    assert (late.status_code, late.json()["error"]) == (
        409,
        {
            "code": "already_finished",
            "message": f"refund {request_id} already finished (succeeded)",
            "details": {"status": "succeeded"},
        },
    )
    assert len(sandbox.stripe_refunds(payment)) == 1


async def test_small_refunds_are_not_reviewable(stack: Stack, sandbox: SandboxControl) -> None:
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    request_id = unique("small")
    body = refund_body(request_id, payment, amount=100)
    await stack.http.post("/v1/refund-requests", content=body, headers=signed_headers(body))
    await wait_for_status(stack, request_id, FINAL)
    response = await review(stack, request_id, "approve", "alice-token")
    assert response.status_code in (404, 409)


async def test_psp_refusal_after_review_fails_and_releases_the_reservation(
    stack: Stack, sandbox: SandboxControl
) -> None:
    """Someone refunds by hand in the PSP's dashboard while ours waits for review: the PSP refuses."""
    request_id, payment = await large_refund_awaiting_review(stack, sandbox)
    dashboard = stripe.StripeClient(stack.settings.stripe_api_key, base_addresses={"api": stack.sandbox_url})
    dashboard.v1.refunds.create({"payment_intent": payment, "amount": 100_000})

    approved = await review(stack, request_id, "approve", "alice-token")
    assert approved.status_code == 200

    view = await wait_for_status(stack, request_id, FINAL)
    assert (view["status"], view["failure_code"]) == ("failed", "refund_exceeds_capture")
    assert [r["amount"] for r in sandbox.stripe_refunds(payment)] == [100_000]
    assert "reservation_released" in [e["step"] for e in view["audit"]]
