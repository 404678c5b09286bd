"""How fast one API client's daily budget takes reservations, the point where its requests queue.

    python bench/client_budget.py --requests 2000 --threads 16

A client's reservations in one currency are serialised by its budget row (FOR UPDATE on PostgreSQL,
the single writer on SQLite), so this is the ceiling on one client's intake rate, whatever the
service's. Creates a fresh PostgreSQL database (or SQLite with --sqlite), one client with a budget
large enough for every request, then reserves from --threads threads at once. Prints reservations
per second, latency percentiles, and the key lookup each request also pays.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters.db import clients  # noqa: E402
from adapters.db.engine import Database  # noqa: E402
from domain.clients import Client, new_key  # noqa: E402
from domain.money import Money  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def fresh_database(sqlite: bool) -> tuple[str, str | None]:
    if sqlite:
        return f"sqlite:///{tempfile.mkdtemp()}/bench.db", None
    name = f"refunds_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", name


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--sqlite", action="store_true", help="SQLite instead of PostgreSQL")
    args = parser.parse_args()

    url, created = fresh_database(args.sqlite)
    db = Database.connect(url)
    client = Client(
        name="bench",
        merchant_id="default",
        reasons=("damaged",),
        maxima=(Money(value=5_000, currency="EUR"),),
        budgets=(Money(value=10**12, currency="EUR"),),
    )
    key = new_key()
    with db.transaction() as session:
        clients.create(session, client, key)

    def lookup(_: int) -> float:
        started = time.perf_counter()
        with db.transaction() as session:
            assert clients.by_key(session, key) is not None
        return time.perf_counter() - started

    def reserve(i: int) -> float:
        started = time.perf_counter()
        with db.transaction() as session:
            done = clients.reserve(
                session, client, f"bench-{i}", Money(value=100, currency="EUR"), datetime.now(UTC)
            )
        assert done.held is None and done.fresh
        return time.perf_counter() - started

    try:
        with ThreadPoolExecutor(args.threads) as pool:
            lookups = list(pool.map(lookup, range(args.requests)))
            started = time.perf_counter()
            latencies = list(pool.map(reserve, range(args.requests)))
            elapsed = time.perf_counter() - started
        with db.transaction() as session:
            reserved = clients.reserved_total(session, "bench", "EUR", datetime(2000, 1, 1, tzinfo=UTC))
        assert reserved == 100 * args.requests, reserved
    finally:
        db.dispose()
        if created:
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{created}" WITH (FORCE)')

    ms = 1000
    print(f"database: {'SQLite' if args.sqlite else 'PostgreSQL'}, {args.threads} threads, one client")
    print(f"reservations: {args.requests} in {elapsed:.2f} s = {args.requests / elapsed:,.0f}/s")
    print(
        f"reserve latency ms: p50 {statistics.median(latencies) * ms:.2f}  "
        f"p99 {percentile(latencies, 0.99) * ms:.2f}"
    )
    print(
        f"key lookup ms: p50 {statistics.median(lookups) * ms:.2f}  p99 {percentile(lookups, 0.99) * ms:.2f}"
    )


if __name__ == "__main__":
    main()
