"""Review rules: four eyes, no self-approval, the Temporal UI's signals, and review deadlines (days of
skipped time on Temporal's time-skipping server, never a real clock)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from adapters.db import audit
from domain.contracts import RefundPolicy, RefundState, ReviewInput
from sandbox.stripe.control import SandboxControl
from tests.conftest import Stack, starter_for, worker_for
from tests.helpers import (
    FOUR_EYES,
    TOKENS,
    decide,
    eventually,
    refund_body,
    signed_headers,
    signed_input,
    state_of,
    unique,
)
from workflows.refund import RefundWorkflow


def _awaiting_review(state: RefundState) -> bool:
    return state.status.value == "awaiting_review"


async def test_four_eyes_need_two_different_reviewers_and_never_the_requester(
    stack: Stack, sandbox: SandboxControl, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(FOUR_EYES)
    payment = sandbox.seed_stripe_payment(amount=1_000_000, currency="EUR")
    request_id = unique("4eyes")
    handle = stack.client.get_workflow_handle_for(RefundWorkflow.run, f"refund-{request_id}")

    starter = starter_for(stack, policy_file=policy, reviewer_tokens=TOKENS)
    async with starter as (settings, http), worker_for(stack, settings):
        body = refund_body(request_id, payment, amount=600_000, metadata={"requested_by": "bob"})
        accepted = await http.post("/v1/refund-requests", content=body, headers=signed_headers(body))
        assert accepted.status_code == 202
        waiting = await eventually(lambda: state_of(handle), lambda s: s.status.value == "awaiting_review")
        assert waiting.risk is not None and waiting.risk.approvals_needed == 2
        assert waiting.risk.policy_version == "four-eyes-1"

        assert (await decide(http, request_id, "approve", "alice")).status_code == 200
        assert (await state_of(handle)).status.value == "awaiting_review"  # one pair of eyes so far
        again = await decide(http, request_id, "approve", "alice")
        own = await decide(http, request_id, "approve", "bob")
        assert [(r.status_code, r.json()["error"]["code"]) for r in (again, own)] == [
            (409, "invalid_state"),
            (409, "unauthorized"),
        ]
        assert (await decide(http, request_id, "approve", "carol")).status_code == 200
        final = await handle.result()

    assert final.status.value == "succeeded"
    assert [a.reviewer for a in final.approvals] == ["alice", "carol"]
    with stack.database.transaction() as session:
        decided = next(e for e in audit.trail(session, request_id) if e.step == "review_decided")
    assert (decided.detail["approvers"], decided.detail["policy_version"]) == ("alice,carol", "four-eyes-1")


async def test_the_temporal_ui_decides_by_signal_with_the_same_checks(
    stack: Stack, sandbox: SandboxControl
) -> None:
    payment = sandbox.seed_stripe_payment(amount=500_000, currency="EUR")
    request_id = unique("ui")
    body = refund_body(request_id, payment, amount=150_000, metadata={"requested_by": "erin"})
    assert (
        await stack.http.post("/v1/refund-requests", content=body, headers=signed_headers(body))
    ).is_success
    handle = stack.client.get_workflow_handle_for(RefundWorkflow.run, f"refund-{request_id}")
    await eventually(lambda: state_of(handle), lambda s: s.status.value == "awaiting_review")

    await handle.signal(RefundWorkflow.approve_from_ui, ReviewInput(reviewer="erin"))  # her own request
    await handle.signal(RefundWorkflow.reject_from_ui, ReviewInput(reviewer="dave"))  # a reason is required
    await handle.signal(RefundWorkflow.approve_from_ui, ReviewInput(reviewer="dave"))
    final = await handle.result()

    assert final.status.value == "succeeded" and final.review is not None
    assert final.review.reviewer == "ui:dave"
    with stack.database.transaction() as session:
        steps = [e.step for e in audit.trail(session, request_id)]
    assert steps.count("review_signal_refused") == 2


async def test_a_review_nobody_decides_is_escalated_then_decided_by_policy(
    stack: Stack, sandbox: SandboxControl, skipping_env: WorkflowEnvironment
) -> None:
    payment = sandbox.seed_stripe_payment(amount=500_000, currency="EUR")
    request_id = unique("late")
    policy = RefundPolicy(version="deadline-1", review_escalate_after_seconds=24 * 3600)
    side = stack.settings.model_copy(update={"task_queue": f"skip-{request_id}"})

    async with worker_for(stack, side, client=skipping_env.client):
        handle = await skipping_env.client.start_workflow(
            RefundWorkflow.run,
            signed_input(request_id, payment, 150_000, policy),
            id=f"refund-{request_id}",
            task_queue=side.task_queue,
        )
        waiting = await eventually(lambda: state_of(handle), lambda s: s.status.value == "awaiting_review")
        assert not waiting.review_escalated and waiting.awaiting_review_since is not None

        await skipping_env.sleep(timedelta(hours=25))
        escalated = await eventually(lambda: state_of(handle), lambda s: s.review_escalated)
        assert escalated.status.value == "awaiting_review"

        await skipping_env.sleep(timedelta(days=2))
        final = await handle.result()

    assert (final.status.value, final.failure_code) == ("rejected", "review_timeout")
    with stack.database.transaction() as session:
        steps = [e.step for e in audit.trail(session, request_id)]
    assert {"review_escalated", "ops_notification_skipped", "review_decided"} <= set(steps)
