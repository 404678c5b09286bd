"""PSP rate limits: each PSP's calls run on the PSP's own task queue, which Temporal rate-limits
across every worker, so a burst of refunds stays under the PSP account's limit."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from temporalio.api.enums.v1 import EventType

from domain.naming import Activity
from sandbox.stripe.control import SandboxControl
from tests.conftest import Stack
from tests.flows import refund_through_pipeline
from tests.helpers import unique
from workers.psps import build_directory
from workers.worker import EXECUTOR_THREADS, build_worker


async def test_psp_calls_are_scheduled_on_the_psps_own_queue(stack: Stack, sandbox: SandboxControl) -> None:
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    view = await refund_through_pipeline(stack, payment, amount=600)
    history = await stack.client.get_workflow_handle(view["workflow_id"]).fetch_history()
    queues = {
        event.activity_task_scheduled_event_attributes.activity_type.name: (
            event.activity_task_scheduled_event_attributes.task_queue.name
        )
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    }
    assert queues == {Activity.REFUND: f"{stack.settings.task_queue}-psp-stripe"}


def queue_limits(stack: Stack, **overrides: object) -> tuple[str, dict[str, float | None]]:
    """The task queue, and each queue's activity rate limit, of a worker built with `overrides`."""
    settings = stack.settings.model_copy(update={"task_queue": unique("rates"), **overrides})
    with ThreadPoolExecutor(max_workers=EXECUTOR_THREADS) as executor:
        workers = build_worker(
            stack.client, settings, stack.database, build_directory(settings, stack.database), executor
        )
    limits = {
        worker.config()["task_queue"]: worker.config().get("max_task_queue_activities_per_second")
        for worker in workers.workers
    }
    return settings.task_queue, limits


async def test_each_configured_psp_gets_a_rate_limited_worker(stack: Stack) -> None:
    queue, limits = queue_limits(stack, psp_rate_limits="stripe:25, paypal:2.5")
    assert limits == {
        queue: None,
        f"{queue}-psp-stripe": 25,
        f"{queue}-psp-adyen": None,  # no limit configured: Temporal's default
        f"{queue}-psp-paypal": 2.5,
    }


async def test_each_merchants_own_psp_account_gets_its_own_rate_limited_worker(
    stack: Stack, tmp_path: Path
) -> None:
    merchants = tmp_path / "merchants.toml"
    merchants.write_text(
        '[merchants.globex]\ninbound_webhook_secret = "s"\n'
        '[merchants.globex.stripe]\napi_key = "sk_globex"\nwebhook_secret = "whsec_globex"\nrate_limit = 5\n'
        '[merchants.acme]\ninbound_webhook_secret = "s"\n'  # no PSP account of its own: no queue
    )
    queue, limits = queue_limits(stack, psp_rate_limits="stripe:25", merchants_file=merchants)
    assert limits == {
        queue: None,
        f"{queue}-psp-stripe": 25,
        f"{queue}-psp-adyen": None,
        f"{queue}-psp-paypal": None,
        f"{queue}-psp-stripe-globex": 5,  # globex's account, its own limit
    }
