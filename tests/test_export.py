"""The ERP export: every posted ledger entry leaves once, in CSV or JSON lines, through the outbox."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest

from adapters.db import outbox
from adapters.db.engine import Database
from sandbox.stripe.control import SandboxControl
from tests.conftest import Stack
from tests.flows import FINAL, cli, submit, wait_for_status
from tests.helpers import book_refund, refund_body, unique
from workers.erp_export import ExportFormat, file_writer


def drain(db: Database) -> None:
    while outbox.export(db, lambda batch: None).entries:
        pass


@pytest.fixture
def clean_db(db: Database) -> Iterator[Database]:
    drain(db)  # earlier tests on this database left entries behind
    yield db


def test_each_posted_entry_is_exported_once(clean_db: Database, tmp_path: Path) -> None:
    confirmed = book_refund(clean_db, goods=1_000, tax=190)
    refused = book_refund(clean_db, goods=500, tax=0, confirmed=False)
    out = tmp_path / "ledger.csv"

    first = outbox.export(clean_db, file_writer(out, ExportFormat.CSV))
    second = outbox.export(clean_db, file_writer(out, ExportFormat.CSV))

    # goods and tax posted from the reservation, then the payout; the refused refund posts nothing
    assert [e.transfer_key for e in first.entries] == [
        f"{confirmed}:hold1:goods:post",
        f"{confirmed}:hold1:tax:post",
        f"{confirmed}:payout:payout",
    ]
    assert second.entries == []
    rows = list(csv.DictReader(out.open()))
    assert [(r["request_id"], r["amount_minor"], r["amount"]) for r in rows] == [
        (confirmed, "1000", "10.00"),
        (confirmed, "190", "1.90"),
        (confirmed, "1190", "11.90"),
    ]
    assert {r["batch_id"] for r in rows} == {first.batch_id}
    assert refused not in {r["request_id"] for r in rows}


def test_a_failed_write_marks_nothing(clean_db: Database) -> None:
    request_id = book_refund(clean_db, goods=300, tax=0)

    def broken(batch: outbox.ExportBatch) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError):
        outbox.export(clean_db, broken)
    again = outbox.export(clean_db, lambda batch: None)
    assert {e.request_id for e in again.entries} == {request_id}


def test_concurrent_exporters_never_send_an_entry_twice(clean_db: Database) -> None:
    for _ in range(10):
        book_refund(clean_db, goods=100, tax=10)
    with ThreadPoolExecutor(max_workers=4) as pool:
        batches = list(pool.map(lambda _: outbox.export(clean_db, lambda batch: None, limit=7), range(8)))
    ids = [entry.entry_id for batch in batches for entry in batch.entries]
    assert len(ids) == len(set(ids)) == 30


async def test_refunds_export_writes_json_lines_once(
    stack: Stack, sandbox: SandboxControl, tmp_path: Path
) -> None:
    payment = sandbox.seed_stripe_payment(amount=2_000, currency="JPY")
    request_id = unique("erp")
    await submit(stack, refund_body(request_id, payment, amount=700, currency="JPY"))
    assert (await wait_for_status(stack, request_id, FINAL))["status"] == "succeeded"
    out = tmp_path / "erp.jsonl"

    # neither a bare export nor a look marks anything: the file export after them still gets it all
    bare = await cli(stack, "export")
    peek = await cli(stack, "export", "--peek")
    first = await cli(stack, "export", "--format", "jsonl", "--out", str(out))
    second = await cli(stack, "export", "--format", "jsonl", "--out", str(out))

    assert (bare.returncode, "choose_destination" in bare.stderr) == (2, True)
    assert peek.returncode == 0 and request_id in peek.stdout
    assert first.returncode == second.returncode == 0, first.stderr
    batch = first.stderr.split("as batch ")[1].strip()
    assert f"nothing new to export since batch {batch}" in second.stderr
    entries = [json.loads(line) for line in out.read_text().splitlines()]
    ours = [e for e in entries if e["request_id"] == request_id]
    assert [(e["amount_minor"], e["amount"], e["currency"]) for e in ours] == [(700, "700", "JPY")] * 2
    assert len({e["entry_id"] for e in entries}) == len(entries)

    bad = await cli(stack, "export", "--format", "xml")
    assert (bad.returncode, "invalid_format" in bad.stderr) == (2, True)


def test_every_exported_time_carries_its_zone(clean_db: Database) -> None:
    """Before, on SQLite, `posted_at` left without its zone (`2026-12-07T21:20:02.446769`)."""
    book_refund(clean_db, goods=1_000, tax=0)
    entries = outbox.peek(clean_db, limit=100)
    assert entries and all(entry.posted_at.utcoffset() == timedelta(0) for entry in entries)
