"""A refund's audit trail reads in the order its steps happened, and its times agree with that order,
even when a step the workflow took is written after a later one with an earlier stamp."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from adapters.db import audit
from adapters.db.engine import Database
from domain.contracts import AuditEvent
from sandbox.stripe.control import SandboxControl
from tests.conftest import Stack
from tests.flows import FINAL, cli, submit, wait_for_status
from tests.helpers import refund_body, unique


def _event(key: str, step: str, at: datetime) -> AuditEvent:
    return AuditEvent(key=key, step=step, actor="system", at=at)


def test_the_trail_is_in_time_order_and_times_never_run_backwards(db: Database) -> None:
    request_id = unique("order")
    task_start = datetime.now(UTC)
    validated = task_start + timedelta(milliseconds=150)  # the activity's own clock, later
    with db.transaction() as session:
        audit.record(session, request_id, "pi_1", [_event("validate", "validated", validated)])
    with db.transaction() as session:  # the workflow's note of that task, written with the next step
        audit.record(
            session,
            request_id,
            "pi_1",
            [_event("wf:1", "status_changed", task_start), _event("reserve", "amount_reserved", task_start)],
        )
    with db.transaction() as session:
        trail = audit.trail(session, request_id)
    assert [e.step for e in trail] == ["validated", "status_changed", "amount_reserved"]
    stamps = [e.at for e in trail]
    assert stamps == sorted(stamps)
    # ISO 8601 with its offset, whichever database kept it
    assert all(e.model_dump(mode="json")["at"].endswith("Z") for e in trail)


async def test_a_refund_that_failed_says_why_on_its_trail(stack: Stack, sandbox: SandboxControl) -> None:
    """Before: `validated ok`, then `validating → failed` with nothing of why (the status view knew)."""
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    request_id = unique("why")
    assert (
        await submit(stack, refund_body(request_id, payment, amount=1_000, currency="USD"))
    ).status_code == 202
    view = await wait_for_status(stack, request_id, FINAL)
    assert (view["status"], view["failure_code"]) == ("failed", "currency_mismatch")
    [ended] = [e for e in view["audit"] if e["step"] == "status_changed" and e["status_after"] == "failed"]
    assert ended["reason_code"] == "currency_mismatch" and "USD" in ended["detail"]["message"], ended
    [refused] = [e for e in view["audit"] if e["step"] == "amount_refused"]
    assert refused["reason_code"] == "currency_mismatch", refused
    shown = (await cli(stack, "audit", request_id)).stdout
    assert "amount_refused" in shown and "request is in USD" in shown, shown
