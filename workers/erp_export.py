"""Ledger entries as the merchant's ERP reads them: CSV or JSON lines, amounts exact."""

from __future__ import annotations

import csv
import json
import os
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

from adapters.db.outbox import ExportBatch, ExportEntry
from domain.money import format_minor

FIELDS = [
    "entry_id",
    "batch_id",
    "posted_at",
    "merchant",
    "request_id",
    "transfer_key",
    "debit_account",
    "credit_account",
    "currency",
    "amount_minor",
    "amount",
    "description",
]


class ExportFormat(StrEnum):
    CSV = "csv"
    JSONL = "jsonl"


def record(batch_id: str, entry: ExportEntry) -> dict[str, Any]:
    return {
        "entry_id": entry.entry_id,
        "batch_id": batch_id,
        "posted_at": entry.posted_at.isoformat(),
        "merchant": entry.merchant,
        "request_id": entry.request_id,
        "transfer_key": entry.transfer_key,
        "debit_account": entry.debit_account,
        "credit_account": entry.credit_account,
        "currency": entry.currency,
        "amount_minor": entry.amount,
        "amount": format_minor(entry.amount, entry.currency),
        "description": entry.description,
    }


def write_batch(batch: ExportBatch, stream: IO[str], fmt: ExportFormat, *, header: bool) -> None:
    rows = [record(batch.batch_id, entry) for entry in batch.entries]
    if fmt is ExportFormat.JSONL:
        for row in rows:
            stream.write(json.dumps(row, separators=(",", ":")) + "\n")
        return
    writer = csv.DictWriter(stream, fieldnames=FIELDS, lineterminator="\n")
    if header:
        writer.writeheader()
    writer.writerows(rows)


def file_writer(path: Path, fmt: ExportFormat) -> Any:
    """Appends a batch to `path` and makes it durable before the batch is marked exported."""

    def write(batch: ExportBatch) -> None:
        fresh = not path.exists() or path.stat().st_size == 0
        with path.open("a", encoding="utf-8", newline="") as stream:
            write_batch(batch, stream, fmt, header=fresh)
            stream.flush()
            os.fsync(stream.fileno())

    return write
