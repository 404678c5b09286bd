"""Revoking a reviewer stops their new decisions, not the approvals they gave before: ops void those on
a refund still awaiting review (`refunds void-approval`, a workflow Update, audited with the operator),
and four eyes then take two people approving now. Rotating the review-signing key without keeping the
old one strands refunds that know only the old key: `refunds serve` names them at its start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHandle

from adapters.db import audit
from domain.contracts import RefundState
from sandbox.stripe.control import SandboxControl
from tests.conftest import Stack, starter_for, worker_for
from tests.flows import LARGE, cli
from tests.helpers import (
    FOUR_EYES,
    TOKENS,
    decide,
    eventually,
    refund_body,
    signed_headers,
    state_of,
    unique,
)
from workflows.refund import RefundWorkflow


async def _awaiting_review(
    stack: Stack, sandbox: SandboxControl, http: Any, amount: int
) -> tuple[str, WorkflowHandle[Any, RefundState]]:
    payment = sandbox.seed_stripe_payment(amount=1_000_000, currency="EUR")
    request_id = unique("revoked")
    body = refund_body(request_id, payment, amount=amount)
    response = await http.post("/v1/refund-requests", content=body, headers=signed_headers(body))
    assert response.status_code == 202
    handle = stack.client.get_workflow_handle_for(RefundWorkflow.run, f"refund-{request_id}")
    await eventually(lambda: state_of(handle), lambda s: s.status.value == "awaiting_review")
    return request_id, handle


async def test_a_revoked_reviewers_approval_is_voided_and_four_eyes_need_two_people_again(
    stack: Stack, sandbox: SandboxControl, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(FOUR_EYES)
    async with (
        starter_for(stack, policy_file=policy, reviewer_tokens=TOKENS) as (settings, http),
        worker_for(stack, settings),
    ):
        request_id, handle = await _awaiting_review(stack, sandbox, http, 600_000)
        assert (await decide(http, request_id, "approve", "bob")).status_code == 200

        # bob's token is revoked: the service no longer takes his decisions...
        revoked_tokens = "alice:alice-token,carol:carol-token"
        async with starter_for(
            stack, task_queue=settings.task_queue, policy_file=policy, reviewer_tokens=revoked_tokens
        ) as (_, revoked):
            assert (await decide(revoked, request_id, "approve", "bob")).status_code == 401
            # ...but the approval he gave before still counts until ops void it
            assert [a.reviewer for a in (await state_of(handle)).approvals] == ["bob"]
            voided = await cli(
                stack, "void-approval", request_id, "--reviewer", "Bob", "--operator", "ops-ann",
                "--reason", "token revoked",
            )  # fmt: skip
            assert voided.returncode == 0, voided.stdout + voided.stderr
            assert "approvals left: none" in voided.stdout
            state = await state_of(handle)
            assert (state.status.value, state.approvals) == ("awaiting_review", [])

            # nothing of bob's is left to void
            again = await cli(
                stack, "void-approval", request_id, "--reviewer", "bob", "--operator", "ops-ann"
            )
            assert again.returncode == 1 and "not_found" in again.stdout + again.stderr

            assert (await decide(revoked, request_id, "approve", "carol")).status_code == 200
            assert (await state_of(handle)).status.value == "awaiting_review"  # one of two now
            assert (await decide(revoked, request_id, "approve", "alice")).status_code == 200
            final = await handle.result()

    assert final.status.value == "succeeded"
    assert [a.reviewer for a in final.approvals] == ["carol", "alice"]
    with stack.database.transaction() as session:
        trail = audit.trail(session, request_id)
    [row] = [e for e in trail if e.step == "approval_voided"]
    assert row.actor == "operator:ops-ann"
    assert (row.detail["reviewer"], row.detail["voided"], row.detail["reason"]) == (
        "Bob",
        "1",
        "token revoked",
    )
    [decided] = [e for e in trail if e.step == "review_decided"]
    assert decided.detail["approvers"] == "carol,alice"


async def test_only_an_open_review_has_approvals_to_void(stack: Stack, sandbox: SandboxControl) -> None:
    async with starter_for(stack, reviewer_tokens=TOKENS) as (settings, http), worker_for(stack, settings):
        request_id, handle = await _awaiting_review(stack, sandbox, http, LARGE)
        none_yet = await cli(stack, "void-approval", request_id, "--reviewer", "bob", "--operator", "ops-ann")
        assert none_yet.returncode == 1 and "not_found" in none_yet.stdout + none_yet.stderr
        assert (await decide(http, request_id, "approve", "bob")).status_code == 200  # decides alone
        await handle.result()
        done = await cli(stack, "void-approval", request_id, "--reviewer", "bob", "--operator", "ops-ann")
    assert done.returncode == 1 and "already finished" in done.stdout + done.stderr


async def test_a_start_names_the_refunds_a_dropped_review_key_strands(
    stack: Stack, sandbox: SandboxControl
) -> None:
    from workers.review_key_rotation import rotation_warnings, stranded_reviews

    old, new = "old-review-signing-secret-" + "o" * 24, "new-review-signing-secret-" + "n" * 24
    async with (
        starter_for(stack, reviewer_tokens=TOKENS, review_signing_key=old) as (settings, http),
        worker_for(stack, settings),
    ):
        request_id, _ = await _awaiting_review(stack, sandbox, http, LARGE)
        dropped = settings.model_copy(update={"review_signing_key": new}).review_public_keys()
        kept = settings.model_copy(update={"review_signing_key": f"{new},{old}"}).review_public_keys()

        async def stranded_by_the_drop() -> list[str]:
            return await stranded_reviews(stack.client, dropped)

        await eventually(stranded_by_the_drop, lambda ids: request_id in ids)  # visibility trails
        assert request_id not in await stranded_reviews(stack.client, kept)
        [warning] = await rotation_warnings(stack.database, stack.client, dropped)
        assert "REFUNDS_REVIEW_SIGNING_KEY" in warning and "Rotating the review-signing key" in warning
        assert "refund(s) awaiting review" in warning
        # nothing was ever dropped: nothing to say, and Temporal is not asked
        assert (
            await rotation_warnings(stack.database, stack.client, (*dropped, *kept, *_published(stack))) == []
        )


def _published(stack: Stack) -> tuple[str, ...]:
    from adapters.db import service_keys

    with stack.database.transaction() as session:
        return service_keys.known(session)
