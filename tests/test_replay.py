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
from workflows.refund import RefundWorkflow

HISTORIES = Path(__file__).parent / "histories"
RECORDING = os.environ.get("REFUNDS_RECORD_HISTORIES") == "1"


def recorded() -> list[Path]:
    return sorted(HISTORIES.glob("*.json"))


@pytest.mark.parametrize("path", recorded(), ids=lambda p: p.stem)
async def test_recorded_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    replayer = Replayer(
        workflows=[RefundWorkflow], data_converter=pydantic_data_converter, workflow_runner=sandboxed_runner()
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
