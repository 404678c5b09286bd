"""Recorded RefundWorkflow histories replay against today's code: a breaking change fails CI.

Record new histories (after an intended, versioned change) with
`REFUNDS_RECORD_HISTORIES=1 pytest tests/test_replay.py -k record`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from sandbox.stripe.control import SandboxControl
from tests.broken_workflow import ReorderedRefundWorkflow
from tests.conftest import Stack
from tests.flows import FINAL, LARGE, cli, submit, wait_for_status
from tests.helpers import unique
from workers.worker import sandboxed_runner
from workflows.external_refund import ExternalRefundWorkflow
from workflows.late_failure import LateRefundFailureWorkflow
from workflows.refund import RefundWorkflow

HISTORIES = Path(__file__).parent / "histories"
RECORDING = os.environ.get("REFUNDS_RECORD_HISTORIES") == "1"


def recorded() -> list[Path]:
    return sorted(HISTORIES.glob("*.json"))


@pytest.mark.parametrize("path", recorded(), ids=lambda p: p.stem)
async def test_recorded_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    replayer = Replayer(
        workflows=[RefundWorkflow, LateRefundFailureWorkflow, ExternalRefundWorkflow],
        data_converter=pydantic_data_converter,
        workflow_runner=sandboxed_runner(),
    )
    await replayer.replay_workflow(history)


def test_histories_are_present() -> None:
    assert {p.stem for p in recorded()} >= {"happy_path", "review_approved"}


async def test_a_breaking_change_fails_replay() -> None:
    path = HISTORIES / "happy_path.json"
    history = WorkflowHistory.from_json("happy_path", path.read_text())
    replayer = Replayer(
        workflows=[ReorderedRefundWorkflow],
        data_converter=pydantic_data_converter,
        workflow_runner=sandboxed_runner(),
    )
    with pytest.raises(NondeterminismError):
        await replayer.replay_workflow(history)


@pytest.mark.skipif(not RECORDING, reason="set REFUNDS_RECORD_HISTORIES=1 to record")
async def test_record_histories(stack: Stack, sandbox: SandboxControl) -> None:
    HISTORIES.mkdir(exist_ok=True)
    small = sandbox.seed_stripe_payment(amount=10_000, currency="EUR")
    big = sandbox.seed_stripe_payment(amount=200_000, currency="EUR")
    happy, reviewed = unique("hist"), unique("hist")
    from tests.helpers import refund_body

    await submit(stack, refund_body(happy, small, amount=2_000))
    await submit(stack, refund_body(reviewed, big, amount=LARGE))
    await wait_for_status(stack, reviewed, {"awaiting_review"})
    assert (await cli(stack, "approve", reviewed, "--token", "alice-token")).returncode == 0
    for name, request_id in (("happy_path", happy), ("review_approved", reviewed)):
        await wait_for_status(stack, request_id, FINAL)
        history = await stack.client.get_workflow_handle(f"refund-{request_id}").fetch_history()
        (HISTORIES / f"{name}.json").write_text(history.to_json())


@pytest.mark.skipif(not RECORDING, reason="set REFUNDS_RECORD_HISTORIES=1 to record")
async def test_record_outcome_proof_histories(stack: Stack, sandbox: SandboxControl) -> None:
    """A pending refund that a signal without proof tries to settle, then the PSP's proven webhook
    (read back at the PSP) does; and an open refund whose proven late failure is read back and reversed."""
    from domain.contracts import PspRefundUpdate
    from domain.status import PspRefundStatus
    from tests.helpers import refund_body

    pending = sandbox.seed_stripe_payment(amount=10_000, currency="EUR", refund_behavior="pending")
    request_id = unique("hist")
    await submit(stack, refund_body(request_id, pending, amount=2_000))
    view = await wait_for_status(stack, request_id, {"awaiting_confirmation"})
    handle = stack.client.get_workflow_handle(f"refund-{request_id}")
    forged = PspRefundUpdate(psp_refund_id=view["psp_refund_id"], status=PspRefundStatus.FAILED)
    await handle.signal(RefundWorkflow.psp_refund_update, forged)
    sandbox.settle_stripe_refund(view["psp_refund_id"])
    await wait_for_status(stack, request_id, FINAL)
    (HISTORIES / "outcome_proven_and_read_back.json").write_text((await handle.fetch_history()).to_json())

    paid = sandbox.seed_stripe_payment(amount=10_000, currency="EUR")
    open_one = unique("hist")
    item = {"sku": unique("SKU"), "quantity": 1, "unit_amount": 1_500, "tax_amount": 0, "restock": True}
    await submit(stack, refund_body(open_one, paid, amount=1_500, reason_code="changed_mind", items=[item]))
    view = await wait_for_status(stack, open_one, {"succeeded"})
    sandbox.fail_stripe_refund_late(view["psp_refund_id"])
    await wait_for_status(stack, open_one, {"failed"})
    handle = stack.client.get_workflow_handle(f"refund-{open_one}")  # reversed; still open for the goods
    (HISTORIES / "late_failure_proven_while_open.json").write_text((await handle.fetch_history()).to_json())


@pytest.mark.skipif(not RECORDING, reason="set REFUNDS_RECORD_HISTORIES=1 to record")
async def test_record_standalone_outcome_histories(stack: Stack, sandbox: SandboxControl) -> None:
    """A closed refund's late failure, reversed by its own workflow; a dashboard refund booked, and
    the run its later failure starts, which reverses it."""
    import stripe

    from tests.helpers import eventually, refund_body, workflow_completed
    from workers.psp_wiring.stripe import SANDBOX_STRIPE_API_KEY

    paid = sandbox.seed_stripe_payment(amount=10_000, currency="EUR")
    request_id = unique("hist")
    await submit(stack, refund_body(request_id, paid, amount=2_000))
    view = await wait_for_status(stack, request_id, {"succeeded"})
    sandbox.fail_stripe_refund_late(view["psp_refund_id"])
    late = stack.client.get_workflow_handle(f"refund-late-failure-{request_id}-{view['psp_refund_id']}")
    await eventually(lambda: workflow_completed(stack.client, late.id), bool)
    (HISTORIES / "late_failure_workflow_reversed.json").write_text((await late.fetch_history()).to_json())

    dashboard = stripe.StripeClient(SANDBOX_STRIPE_API_KEY, base_addresses={"api": stack.sandbox_url})
    made = dashboard.v1.refunds.create({"payment_intent": paid, "amount": 3_000})
    external = stack.client.get_workflow_handle(f"refund-external-stripe-{made.id}")
    await eventually(lambda: workflow_completed(stack.client, external.id), bool)
    booked = (await external.fetch_history()).to_json()
    (HISTORIES / "external_refund_booked.json").write_text(booked)
    sandbox.fail_stripe_refund_late(made.id)

    async def second_run_done() -> bool:
        return await workflow_completed(stack.client, external.id) and (
            (await external.fetch_history()).to_json() != booked
        )

    await eventually(second_run_done, bool)
    (HISTORIES / "external_refund_reversed.json").write_text((await external.fetch_history()).to_json())


@pytest.mark.skipif(not RECORDING, reason="set REFUNDS_RECORD_HISTORIES=1 to record")
async def test_record_review_trail_history(stack: Stack, sandbox: SandboxControl) -> None:
    """A review whose steps are written to the trail while it waits: its start, a refused Temporal
    UI signal (a rejection without a reason), then the reviewer's approval."""
    from domain.contracts import ReviewInput
    from tests.helpers import refund_body

    big = sandbox.seed_stripe_payment(amount=200_000, currency="EUR")
    request_id = unique("hist")
    await submit(stack, refund_body(request_id, big, amount=LARGE))
    await wait_for_status(stack, request_id, {"awaiting_review"})
    handle = stack.client.get_workflow_handle(f"refund-{request_id}")
    await handle.signal(RefundWorkflow.reject_from_ui, ReviewInput(reviewer="mallory"))
    assert (await cli(stack, "approve", request_id, "--token", "alice-token")).returncode == 0
    await wait_for_status(stack, request_id, FINAL)
    (HISTORIES / "review_audited_as_it_happens.json").write_text((await handle.fetch_history()).to_json())
