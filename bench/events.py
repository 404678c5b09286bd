"""Outbound events: how fast the relay delivers, and how long after a refund's success its event
reaches the merchant.

    python bench/events.py --events 3000 --endpoints 4 --refunds 100

1. relay throughput: events already owed (three per refund, spread over `--endpoints` merchants,
   one endpoint each), delivered by one relay (as one worker process runs it) to a fast receiver
   in another process; events delivered per second, signed and recorded, attempts included;
2. delay: the whole product as in production (Temporal dev server, PSP sandbox, service, worker
   processes), `--refunds` low-risk refunds, one and eight at a time (`--concurrency`); for each,
   the time from its success
   (the `refund.succeeded` event's own time) to the receiver having it, p50 and p99.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters.db import audit, event_endpoints, outbound_events  # noqa: E402
from adapters.db.engine import Database  # noqa: E402
from adapters.event_sender import EventSender  # noqa: E402
from bench.pipeline import Pipeline, free_port, percentile, product_environment, wait_http  # noqa: E402
from domain.contracts import AuditEvent  # noqa: E402
from domain.naming import SEARCH_ATTRIBUTES  # noqa: E402
from domain.outbound_events import parse_types  # noqa: E402
from domain.status import RefundStatus  # noqa: E402
from sandbox.stripe.control import SandboxControl  # noqa: E402
from workers.binaries import find_binary  # noqa: E402
from workers.event_relay import EventRelay  # noqa: E402


def sink(port: int, path: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.event_sink", str(port), str(path)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def arrivals(path: Path) -> list[tuple[float, str, dict[str, object]]]:
    if not path.exists():
        return []
    found = []
    for line in path.read_text().splitlines():
        arrived, webhook_id, body = line.split("\t", 2)
        if webhook_id:  # not the readiness probe
            found.append((float(arrived), webhook_id, json.loads(body)))
    return found


def owe(db: Database, events: int, endpoints: int, url: str) -> None:
    """`events` events owed, three per refund, over `endpoints` merchants' endpoints."""
    merchants = [f"bench{n}" for n in range(endpoints)]
    with db.transaction() as session:
        for merchant in merchants:
            event_endpoints.create(session, merchant, url, parse_types("*"))
    now = datetime.now(UTC)
    steps = [
        ("validate:1:verdict", "validated", None, None),
        ("wf:1", "status_changed", RefundStatus.SCORING, RefundStatus.REFUNDING),
        ("wf:2", "status_changed", RefundStatus.REFUNDING, RefundStatus.SUCCEEDED),
    ]
    for n in range(events // len(steps)):
        refund = f"{merchants[n % endpoints]}~r{n}"
        rows = [
            AuditEvent(key=key, step=step, actor="system", status_before=before, status_after=after, at=now)
            for key, step, before, after in steps
        ]
        with db.transaction() as session:
            audit.record(session, refund, "pi_bench", rows)


async def relay_throughput(
    workdir: Path, events: int, endpoints: int, database_url: str
) -> tuple[float, int]:
    port, received = free_port(), workdir / "relay.tsv"
    receiver = sink(port, received)
    db = Database.connect(database_url or f"sqlite:///{workdir / 'relay.db'}")
    try:
        wait_http(f"http://127.0.0.1:{port}/")
        owe(db, events, endpoints, f"http://127.0.0.1:{port}/hooks")
        owed = sum(outbound_events.pending_count(db).values())
        sender = EventSender(dev=True)
        relay = EventRelay(db, sender)
        started = time.perf_counter()
        while sum(outbound_events.pending_count(db).values()):
            await relay.relay_once()
            await relay.drain()
        took = time.perf_counter() - started
        await sender.aclose()
    finally:
        receiver.terminate()
        receiver.wait()
        db.dispose()
    return owed / took, len(arrivals(received))


async def success_to_event(workdir: Path, refunds: int, concurrency: int) -> list[float]:
    """Seconds from each refund's success to its event at the receiver, through the whole product."""
    server = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(find_binary("temporal")),
        search_attributes=SEARCH_ATTRIBUTES,
        data_converter=pydantic_data_converter,
        dev_server_log_level="error",
    )
    address = server.client.service_client.config.target_host
    http_port, sandbox_port, sink_port = free_port(), free_port(), free_port()
    sandbox_url, http_url = f"http://127.0.0.1:{sandbox_port}", f"http://127.0.0.1:{http_port}"
    database_url = f"sqlite:///{workdir / 'refunds.db'}"
    received = workdir / "delay.tsv"
    env = product_environment(address, workdir, database_url, http_port, sandbox_url)
    me = [sys.executable, "-m", "workers.cli"]
    quiet = {"env": env, "cwd": ROOT, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    children = [
        subprocess.Popen([*me, "sandbox", "--port", str(sandbox_port), "--service-url", http_url], **quiet),  # type: ignore[call-overload]
        subprocess.Popen([*me, "serve"], **quiet),  # type: ignore[call-overload]
        sink(sink_port, received),
    ]
    try:
        wait_http(f"{http_url}/healthz")  # the service migrated the database: the endpoint can be kept
        db = Database.connect(database_url)
        with db.transaction() as session:
            event_endpoints.create(
                session, None, f"http://127.0.0.1:{sink_port}/", parse_types("refund.succeeded")
            )
        db.dispose()
        children.append(subprocess.Popen([*me, "worker"], **quiet))  # type: ignore[call-overload]
        wait_http(f"{sandbox_url}/_sandbox/health")
        async with httpx.AsyncClient(base_url=http_url, timeout=60) as http:
            pipeline = Pipeline(server.client, http, SandboxControl(sandbox_url))
            await pipeline.closed_loop(refunds, concurrency)
        deadline = time.monotonic() + 60
        while len(arrivals(received)) < refunds and time.monotonic() < deadline:
            await asyncio.sleep(0.1)  # polling the receiver's file, with a deadline
    finally:
        for child in children:
            child.terminate()
            child.wait()
        await server.shutdown()
    delays = []
    for arrived, _, body in arrivals(received):
        happened = datetime.fromisoformat(str(body["created_at"]).replace("Z", "+00:00")).timestamp()
        delays.append(arrived - happened)
    return delays


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--endpoints", type=int, default=4)
    parser.add_argument("--refunds", type=int, default=100)
    parser.add_argument("--concurrency", type=int, action="append", help="refunds at once (repeatable)")
    parser.add_argument(
        "--database-url", default="", help="for the relay phase; default: SQLite in a temp dir"
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="refunds-events-bench-"))
    rate, heard = await relay_throughput(workdir, args.events, args.endpoints, args.database_url)
    print(f"relay: {heard} events to {args.endpoints} endpoints, {rate:8.1f} events/s delivered")
    for concurrency in args.concurrency or [1, 8]:
        run = Path(tempfile.mkdtemp(prefix=f"c{concurrency}-", dir=workdir))
        delays = await success_to_event(run, args.refunds, concurrency)
        print(
            f"success -> event at the receiver, {concurrency} refunds at once ({len(delays)} of "
            f"{args.refunds}): p50 {percentile(delays, 0.5) * 1000:7.1f} ms   "
            f"p99 {percentile(delays, 0.99) * 1000:7.1f} ms"
        )


if __name__ == "__main__":
    asyncio.run(main())
    sys.stdout.flush()
    os._exit(0)  # skip finalisation: the Temporal client's native runtime may abort it
