"""Worker Versioning: a release's workers poll as a build of the worker deployment, get work only
once promoted, and then take over the refunds in flight (AUTO_UPGRADE, kept deterministic by patches);
the old build drains."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError

from domain.contracts import RefundState
from sandbox.stripe.control import SandboxControl
from tests.conftest import Stack, starter_for, worker_for
from tests.flows import cli, steps_of
from tests.helpers import eventually, proven_review, refund_body, signed_headers, state_of, unique
from tests.next_release import NextReleaseRefundWorkflow
from workers.psps import build_directory
from workers.settings import Settings
from workers.versioning import describe, promote
from workers.worker import EXECUTOR_THREADS, build_worker
from workflows.refund import RefundWorkflow


async def promoted(stack: Stack, settings: Settings, build_id: str) -> None:
    """Promote once the build's workers have polled (the server refuses a build it has not seen)."""

    async def attempt() -> bool:
        try:
            await promote(stack.client, settings, build_id)
        except RPCError:
            return False
        return True

    await eventually(attempt, bool)


def builds_of(history: Any) -> list[str]:
    """The build that completed each workflow task, in order."""
    return [
        event.workflow_task_completed_event_attributes.deployment_version.build_id
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    ]


async def test_a_new_build_gets_work_once_promoted_and_takes_over_refunds_in_flight(
    stack: Stack, sandbox: SandboxControl
) -> None:
    versioned = {"deployment_name": unique("refunds"), "build_id": "v1"}
    async with starter_for(stack, **versioned) as (v1, http):

        async def start(request_id: str, amount: int) -> WorkflowHandle[Any, RefundState]:
            payment = sandbox.seed_stripe_payment(amount=500_000, currency="EUR")
            body = refund_body(request_id, payment, amount=amount)
            assert (
                await http.post("/v1/refund-requests", content=body, headers=signed_headers(body))
            ).is_success
            return stack.client.get_workflow_handle_for(RefundWorkflow.run, f"refund-{request_id}")

        v2 = v1.model_copy(update={"build_id": "v2"})

        async def ops(*args: str) -> bool:
            done = await cli(stack, *args, REFUNDS_DEPLOYMENT_NAME=v1.deployment_name)
            return done.returncode == 0

        async with worker_for(stack, v1):
            await promoted(stack, v1, "v1")
            inflight = unique("inflight")
            waiting = await start(inflight, 150_000)  # waits for a reviewer
            await eventually(lambda: state_of(waiting), lambda s: s.status.value == "awaiting_review")

            with ThreadPoolExecutor(max_workers=EXECUTOR_THREADS) as executor:
                next_release = build_worker(
                    stack.client,
                    v2,
                    stack.database,
                    build_directory(v2, stack.database),
                    executor,
                    workflow_classes=[NextReleaseRefundWorkflow],
                )
                async with next_release:
                    # v2 polls, but until it is promoted every refund stays on v1 (ramped at 0%, too)
                    await eventually(lambda: ops("deploy", "promote", "v2", "--ramp", "0"), bool)
                    ramped = await describe(stack.client, v2)
                    before = unique("before")
                    await (await start(before, 100)).result()
                    await eventually(lambda: ops("deploy", "promote", "v2"), bool)
                    after = unique("after")
                    await (await start(after, 100)).result()
                    await waiting.execute_update(RefundWorkflow.approve, proven_review(v1, inflight, "alice"))
                    final = await waiting.result()
                    deployment = await describe(stack.client, v2)

    assert final.status.value == "succeeded"
    assert "next_release_check" not in steps_of(stack, before)
    assert "next_release_check" in steps_of(stack, after)
    # the refund in flight: started on v1, finished on v2, without the step its validation predates
    builds = builds_of(await waiting.fetch_history())
    assert (builds[0], builds[-1]) == ("v1", "v2")
    assert "next_release_check" not in steps_of(stack, waiting.id.removeprefix("refund-"))
    assert (ramped.current, ramped.ramping, ramped.ramp_percentage) == ("v1", "v2", 0)
    assert (deployment.current, deployment.ramping) == ("v2", None)
    assert {b.build_id: b.status for b in deployment.builds} == {"v1": "draining", "v2": "current"}
    status = await cli(stack, "deploy", "status", REFUNDS_DEPLOYMENT_NAME=v1.deployment_name)
    assert f"{v1.deployment_name}: current v2" in status.stdout and "draining" in status.stdout
