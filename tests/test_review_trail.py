"""A refund waiting for its reviewers shows on its audit trail every step taken so far, as it is taken:
its risk score and the wait itself, a first approval of four eyes, a refused Temporal UI signal. A
review may last weeks; finance reads who already approved without waiting for the decision."""

from __future__ import annotations

from pathlib import Path

from adapters.db import audit
from domain.contracts import ReviewInput
from sandbox.stripe.control import SandboxControl
from tests.conftest import Stack, starter_for, worker_for
from tests.flows import cli
from tests.helpers import FOUR_EYES, TOKENS, decide, eventually, refund_body, signed_headers, state_of, unique
from workflows.refund import RefundWorkflow


def _trail(stack: Stack, request_id: str) -> list[tuple[str, str]]:
    with stack.database.transaction() as session:
        return [(entry.step, entry.actor) for entry in audit.trail(session, request_id)]


async def test_a_waiting_review_shows_each_step_on_the_trail_as_it_happens(
    stack: Stack, sandbox: SandboxControl, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(FOUR_EYES)
    payment = sandbox.seed_stripe_payment(amount=1_000_000, currency="EUR")
    request_id = unique("trail")
    body = refund_body(request_id, payment, amount=600_000)  # over four eyes: two people decide
    async with (
        starter_for(stack, policy_file=policy, reviewer_tokens=TOKENS) as (settings, http),
        worker_for(stack, settings),
    ):
        response = await http.post("/v1/refund-requests", content=body, headers=signed_headers(body))
        assert response.status_code == 202
        handle = stack.client.get_workflow_handle_for(RefundWorkflow.run, f"refund-{request_id}")
        await eventually(lambda: state_of(handle), lambda s: s.status.value == "awaiting_review")

        async def steps() -> list[str]:
            return [step for step, _ in _trail(stack, request_id)]

        waiting = await eventually(steps, lambda s: "risk_scored" in s and "status_changed" in s[-1:])
        assert waiting.index("validated") < waiting.index("risk_scored")

        assert (await decide(http, request_id, "approve", "bob")).status_code == 200
        # a name typed into the Temporal UI, without the service's proof: refused, and audited
        await handle.signal(RefundWorkflow.approve_from_ui, ReviewInput(reviewer="mallory"))

        async def after() -> list[tuple[str, str]]:
            return _trail(stack, request_id)

        trail = await eventually(
            after,
            lambda t: ("review_approved_once", "reviewer:bob") in t and "review_signal_refused" in dict(t),
        )
        assert (await state_of(handle)).status.value == "awaiting_review"  # still one of two
        assert "review_decided" not in dict(trail)
        shown = await cli(stack, "audit", request_id)
        assert "review_approved_once" in shown.stdout and "reviewer:bob" in shown.stdout, shown.stdout
