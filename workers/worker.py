"""The Temporal worker: RefundWorkflow plus the activities, bound to their dependencies."""

from __future__ import annotations

import compileall
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

import workflows
from activities.inventory import InventoryActivities
from activities.ledger import LedgerActivities
from activities.notify import NotifyActivities
from activities.payments import PaymentActivities
from activities.validation import ValidationActivities
from adapters.db.engine import Database
from adapters.psp.base import PspRegistry
from workers.psps import build_registry
from workers.settings import Settings
from workers.shutdown import shutdown_event
from workers.temporal import connect, metrics_runtime
from workflows.external_refund import ExternalRefundWorkflow
from workflows.late_failure import LateRefundFailureWorkflow
from workflows.refund import RefundWorkflow

ACTIVITY_THREADS = 32
GRACEFUL_SHUTDOWN = timedelta(seconds=10)


def precompile_workflows() -> None:
    """Write bytecode for the workflow modules once.

    The sandbox re-imports workflow modules for every new workflow run; without bytecode on disk
    (PYTHONDONTWRITEBYTECODE is common in images) it would compile the source every time. A
    read-only tree is fine: the worker then just runs slower.
    """
    compileall.compile_dir(Path(workflows.__file__).parent, quiet=2)


def workflow_runner(settings: Settings) -> WorkflowRunner:
    """Tests always run sandboxed, so CI catches non-deterministic workflow code either way."""
    return SandboxedWorkflowRunner() if settings.workflow_sandbox else UnsandboxedWorkflowRunner()


def build_worker(
    client: Client,
    settings: Settings,
    db: Database,
    psps: PspRegistry,
    executor: ThreadPoolExecutor,
    task_queue: str | None = None,
) -> Worker:
    validation = ValidationActivities(db, psps, settings.inbound_secrets)
    payments = PaymentActivities(db, psps)
    ledger = LedgerActivities(db, settings.merchant_id)
    inventory = InventoryActivities(db, settings.merchant_id)
    notify = NotifyActivities(db, settings.escalation_webhook_url)
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=[RefundWorkflow, LateRefundFailureWorkflow, ExternalRefundWorkflow],
        activities=[
            validation.validate,
            payments.refund,
            payments.check_refund,
            ledger.reserve,
            ledger.finish,
            ledger.reverse,
            ledger.record_external,
            inventory.restock,
            notify.notify,
        ],
        activity_executor=executor,
        max_concurrent_activities=ACTIVITY_THREADS,
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
        workflow_runner=workflow_runner(settings),
    )


async def run_worker(settings: Settings) -> None:
    """`refunds worker`: run until SIGINT/SIGTERM, letting in-flight activities finish."""
    precompile_workflows()
    db = Database.connect(settings.database_url)
    port = settings.worker_metrics_port
    client = await connect(settings, metrics_runtime(port) if port else None)
    stop = shutdown_event()
    with ThreadPoolExecutor(max_workers=ACTIVITY_THREADS) as executor:
        worker = build_worker(client, settings, db, build_registry(settings, db), executor)
        async with worker:
            print(
                f"worker polling task queue {settings.task_queue!r} at {settings.temporal_address}",
                flush=True,
            )
            await stop.wait()
    db.dispose()
