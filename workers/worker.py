"""The Temporal worker: RefundWorkflow plus the activities, bound to their dependencies."""

from __future__ import annotations

import asyncio
import compileall
import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

import workflows
from activities.audit import AuditActivities
from activities.inventory import InventoryActivities
from activities.ledger import LedgerActivities
from activities.notify import NotifyActivities
from activities.payments import PaymentActivities
from activities.validation import ValidationActivities
from adapters.db.engine import Database
from adapters.event_sender import EventSender
from adapters.psp.base import PspDirectory
from domain.naming import psp_task_queue
from workers.declared_endpoints import keep_declared_endpoints
from workers.event_relay import EventRelay
from workers.legacy_payments import adopt_legacy_payments
from workers.psps import build_directory
from workers.settings import Settings
from workers.shutdown import shutdown_event
from workers.temporal import connect, metrics_runtime
from workers.versioning import deployment_config
from workflows.external_refund import ExternalRefundWorkflow
from workflows.late_failure import LateRefundFailureWorkflow
from workflows.refund import RefundWorkflow

ACTIVITY_THREADS = 32  # the main worker's activity slots
PSP_ACTIVITY_SLOTS = 8  # each PSP queue's worker: the rate limit, not slots, is what bounds it
EXECUTOR_THREADS = ACTIVITY_THREADS + 3 * PSP_ACTIVITY_SLOTS  # a thread for every slot
GRACEFUL_SHUTDOWN = timedelta(seconds=10)


def precompile_workflows() -> None:
    """Write bytecode for the workflow modules once.

    The sandbox re-imports workflow modules for every new workflow run; without bytecode on disk
    (PYTHONDONTWRITEBYTECODE is common in images) it would compile the source every time. A
    read-only tree is fine: the worker then just runs slower.
    """
    compileall.compile_dir(Path(workflows.__file__).parent, quiet=2)


def sandboxed_runner() -> SandboxedWorkflowRunner:
    """The workflow sandbox, with `cryptography` shared from the host: review decisions are verified
    in workflow code, and its native module cannot be loaded a second time inside the sandbox."""
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules("cryptography")
    )


def workflow_runner(settings: Settings) -> WorkflowRunner:
    """Tests always run sandboxed, so CI catches non-deterministic workflow code either way."""
    return sandboxed_runner() if settings.workflow_sandbox else UnsandboxedWorkflowRunner()


class Workers:
    """The refund worker and one worker per configured PSP, started and stopped together."""

    def __init__(self, workers: list[Worker]) -> None:
        self.workers = workers
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> Workers:
        for worker in self.workers:
            await self._stack.enter_async_context(worker)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()


def build_worker(
    client: Client,
    settings: Settings,
    db: Database,
    psps: PspDirectory,
    executor: ThreadPoolExecutor,
    task_queue: str | None = None,
    workflow_classes: Sequence[type] | None = None,
) -> Workers:
    """Workflows and the database steps on the task queue; each PSP account's calls (the default
    merchant's, each other merchant's own) on the account's own queue, at most its rate limit
    (`REFUNDS_PSP_RATE_LIMITS`, a merchant's `rate_limit`) per second across every worker."""
    queue = task_queue or settings.task_queue
    profiles = settings.merchant_profiles()
    secrets = {m: profile.secrets for m, profile in profiles.items()}
    validation = ValidationActivities(db, psps, secrets, settings.merchant_id)
    payments = PaymentActivities(db, psps, own_verify_keys(settings))
    ledger = LedgerActivities(db, settings.merchant_id)
    inventory = InventoryActivities(db, settings.merchant_id)
    notify = NotifyActivities(db, settings.escalation_webhook_url)
    trail = AuditActivities(db)
    psp_calls: list[Callable[..., Any]] = [payments.refund, payments.check_refund, payments.confirm_outcome]
    deployment = deployment_config(settings)
    main = Worker(
        client,
        task_queue=queue,
        workflows=list(
            workflow_classes or [RefundWorkflow, LateRefundFailureWorkflow, ExternalRefundWorkflow]
        ),
        activities=[
            validation.validate,
            *psp_calls,  # workflows started before the PSP queues still schedule them here
            ledger.reserve,
            ledger.finish,
            ledger.reverse,
            ledger.record_external,
            inventory.restock,
            notify.notify,
            trail.record_audit,
        ],
        activity_executor=executor,
        max_concurrent_activities=ACTIVITY_THREADS,
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
        workflow_runner=workflow_runner(settings),
        deployment_config=deployment,
    )
    per_psp: list[Worker] = []
    for merchant_id, profile in profiles.items():
        account_settings = settings.for_merchant(profile)
        own_queue = None if merchant_id == settings.merchant_id else merchant_id
        per_psp.extend(
            Worker(
                client,
                task_queue=psp_task_queue(queue, provider.value, own_queue),
                activities=psp_calls,
                activity_executor=executor,
                max_concurrent_activities=PSP_ACTIVITY_SLOTS,
                max_task_queue_activities_per_second=account_settings.psp_rates.get(provider.value),
                graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
                deployment_config=deployment,
            )
            for provider in psps.registry(merchant_id).providers()
        )
    return Workers([main, *per_psp])


def own_verify_keys(settings: Settings) -> tuple[str, ...]:
    """The service's public keys as this worker's settings know them (dev, or a worker given the
    signing secret); otherwise the worker reads the ones the service published in the database."""
    if not settings.review_signing_key and settings.environment != "dev":
        return ()
    return settings.review_public_keys()


async def run_worker(settings: Settings) -> None:
    """`refunds worker`: run until SIGINT/SIGTERM, letting in-flight activities finish."""
    precompile_workflows()
    db = Database.connect(settings.database_url)
    adopt_legacy_payments(settings, db)
    for change in keep_declared_endpoints(settings, db):
        print(f"event endpoint {change}", flush=True)
    port = settings.worker_metrics_port
    client = await connect(settings, metrics_runtime(port, settings.worker_metrics_host) if port else None)
    stop = shutdown_event()
    with ThreadPoolExecutor(max_workers=EXECUTOR_THREADS) as executor:
        worker = build_worker(client, settings, db, build_directory(settings, db), executor)
        sender = EventSender(
            dev=settings.local_event_endpoints, timeout_seconds=settings.event_timeout_seconds
        )
        async with worker:
            relay = asyncio.create_task(EventRelay(db, sender).run(stop), name="event-relay")
            print(
                f"worker polling task queue {settings.task_queue!r} at {settings.temporal_address}",
                flush=True,
            )
            await stop.wait()
            await relay  # each endpoint's delivery in flight finishes; the rest stays owed
        await sender.aclose()
    db.dispose()
