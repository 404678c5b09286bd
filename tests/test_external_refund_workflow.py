"""The dashboard-refund workflow with its steps stubbed, as Temporal's samples test workflows: what it
books and reverses, whatever order the PSP's words arrive in."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from domain.contracts import (
    ExternalRefundInput,
    LateFailureInput,
    OutcomeCheck,
    OutcomeVerdict,
    PspRefundUpdate,
)
from domain.money import Money
from domain.naming import Activity
from domain.status import Provider, PspRefundStatus
from tests.helpers import time_skipping_temporal
from workers.worker import sandboxed_runner
from workflows.external_refund import ExternalRefundWorkflow

AMOUNT = Money(value=4_000, currency="EUR")


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    async with time_skipping_temporal() as env:
        yield env


class Steps:
    def __init__(self) -> None:
        self.booking = asyncio.Event()  # set: booking may finish
        self.booking.set()
        self.booked: list[ExternalRefundInput] = []
        self.reversed: list[LateFailureInput] = []
        self.proven = True
        self.denied = False
        self.confirmed = 0

    @activity.defn(name=Activity.CONFIRM_OUTCOME)
    async def confirm(self, check: OutcomeCheck) -> OutcomeVerdict:
        self.confirmed += 1
        if not self.proven:
            return OutcomeVerdict(proven=False, denied=self.denied)
        return OutcomeVerdict(
            proven=True, update=check.update.model_copy(update={"proof": None}), read_back=True
        )

    @activity.defn(name=Activity.RECORD_EXTERNAL)
    async def book(self, refund: ExternalRefundInput) -> bool:
        await self.booking.wait()
        self.booked.append(refund)
        return True

    @activity.defn(name=Activity.REVERSE)
    async def reverse(self, late: LateFailureInput) -> bool:
        self.reversed.append(late)
        return bool(self.booked)


def word(status: PspRefundStatus) -> PspRefundUpdate:
    return PspRefundUpdate(psp_refund_id="re_dash", status=status, amount=AMOUNT, proof="signed")


def worker_for(env: WorkflowEnvironment, steps: Steps) -> tuple[Worker, str]:
    queue = f"external-{uuid.uuid4().hex[:8]}"
    worker = Worker(
        env.client,
        task_queue=queue,
        workflows=[ExternalRefundWorkflow],
        activities=[steps.confirm, steps.book, steps.reverse],
        workflow_runner=sandboxed_runner(),
    )
    return worker, queue


async def started_with_success(env: WorkflowEnvironment, queue: str) -> WorkflowHandle[Any, bool]:
    """As the webhook route starts it: signal-with-start carrying the PSP's success."""
    return await env.client.start_workflow(
        ExternalRefundWorkflow.run,
        ExternalRefundInput(provider=Provider.STRIPE, payment_reference="pi_1", psp_refund_id="re_dash"),
        id=f"refund-external-stripe-{uuid.uuid4().hex[:8]}",
        task_queue=queue,
        start_signal="psp_refund_update",
        start_signal_args=[word(PspRefundStatus.SUCCEEDED)],
    )


async def test_a_failure_arriving_while_the_success_is_booked_is_reversed(env: WorkflowEnvironment) -> None:
    """The PSP's success and then its failure, the second while the first is being booked: the run
    does not end with the failure unread (it would never be reversed)."""
    steps = Steps()
    steps.booking.clear()
    worker, queue = worker_for(env, steps)
    async with worker:
        handle = await started_with_success(env, queue)
        await handle.signal(ExternalRefundWorkflow.psp_refund_update, word(PspRefundStatus.FAILED))
        steps.booking.set()
        assert await handle.result() is True
    assert len(steps.booked) == 1 and len(steps.reversed) == 1
    assert steps.reversed[0].request_id == "external:stripe:re_dash"


async def test_an_unproven_word_books_nothing_and_the_run_waits_for_a_proven_one(
    env: WorkflowEnvironment,
) -> None:
    steps = Steps()
    steps.proven = False
    worker, queue = worker_for(env, steps)
    async with worker:
        handle = await started_with_success(env, queue)
        assert await handle.result() is False  # the watch ends (time skips) with nothing booked
    assert steps.booked == [] and steps.reversed == []


async def test_a_word_the_reporting_accounts_psp_denies_ends_the_run_at_once(
    env: WorkflowEnvironment,
) -> None:
    """The reporting account's PSP holds no such refund (an account signing events of refunds it
    never made): the run books nothing and ends now, not once its month's watch timer fires."""
    steps = Steps()
    steps.proven, steps.denied = False, True
    worker, queue = worker_for(env, steps)
    async with worker:
        handle = await started_with_success(env, queue)
        assert await handle.result() is False
        kinds = [event.event_type async for event in handle.fetch_history_events()]
        assert EventType.EVENT_TYPE_TIMER_FIRED not in kinds
    assert (steps.booked, steps.reversed, steps.confirmed) == ([], [], 1)
