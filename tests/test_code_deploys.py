"""A deploy of changed workflow code: a refund started on the previous code, waiting for review while
the workers are replaced, finishes on the new code; its history replays on the new code."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from sandbox.stripe.control import SandboxControl
from tests.conftest import Stack, starter_for, worker_for
from tests.flows import steps_of
from tests.helpers import eventually, proven_review, refund_body, signed_headers, state_of, unique
from tests.next_release import CarelessReleaseRefundWorkflow, NextReleaseRefundWorkflow
from workers.psps import build_directory
from workers.worker import EXECUTOR_THREADS, build_worker, sandboxed_runner
from workflows.refund import RefundWorkflow


async def test_a_refund_in_flight_finishes_on_the_next_release(stack: Stack, sandbox: SandboxControl) -> None:
    payment = sandbox.seed_stripe_payment(amount=500_000, currency="EUR")
    request_id = unique("deploy")
    handle = stack.client.get_workflow_handle_for(RefundWorkflow.run, f"refund-{request_id}")

    async with starter_for(stack) as (settings, http):
        async with worker_for(stack, settings):  # the release running today
            body = refund_body(request_id, payment, amount=150_000)
            assert (
                await http.post("/v1/refund-requests", content=body, headers=signed_headers(body))
            ).is_success
            await eventually(lambda: state_of(handle), lambda s: s.status.value == "awaiting_review")

        # the deploy: every worker replaced by the next release's code
        registry = build_directory(settings, stack.database)
        with ThreadPoolExecutor(max_workers=EXECUTOR_THREADS) as executor:
            next_release = build_worker(
                stack.client,
                settings,
                stack.database,
                registry,
                executor,
                workflow_classes=[NextReleaseRefundWorkflow],
            )
            async with next_release:
                await handle.execute_update(
                    RefundWorkflow.approve, proven_review(settings, request_id, "alice")
                )
                final = await handle.result()

                # a refund started after the deploy takes the new step
                fresh = unique("fresh")
                body = refund_body(
                    fresh, sandbox.seed_stripe_payment(amount=1_000, currency="EUR"), amount=100
                )
                assert (
                    await http.post("/v1/refund-requests", content=body, headers=signed_headers(body))
                ).is_success
                await stack.client.get_workflow_handle(f"refund-{fresh}").result()

    assert final.status.value == "succeeded"
    assert "next_release_check" not in steps_of(stack, request_id)  # validated on the old release
    assert "next_release_check" in steps_of(stack, fresh)

    history = await handle.fetch_history()
    replayer = Replayer(
        workflows=[NextReleaseRefundWorkflow],
        data_converter=pydantic_data_converter,
        workflow_runner=sandboxed_runner(),
    )
    await replayer.replay_workflow(history)  # raises on any nondeterminism
    careless = Replayer(
        workflows=[CarelessReleaseRefundWorkflow],
        data_converter=pydantic_data_converter,
        workflow_runner=sandboxed_runner(),
    )
    with pytest.raises(NondeterminismError):
        await careless.replay_workflow(history)
