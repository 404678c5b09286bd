"""The ledger's export outbox: posted transfers leave for the merchant's ERP in batches, each once.

A batch is claimed, written and marked in one transaction: if writing fails nothing is marked and the
next export sends the same entries; two exporters never claim the same entry (row locks skipped on
PostgreSQL, one writer at a time on SQLite). Each entry carries its `entry_id`, so an ERP that sees a
batch twice (the export died between writing and committing) can drop the repeat.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Select, select
from sqlmodel import col

from adapters.db.dialect import claim_unlocked
from adapters.db.engine import Database
from adapters.db.models import LedgerOutboxRow, LedgerTransferRow, utcnow


@dataclass(frozen=True)
class ExportEntry:
    entry_id: int
    transfer_key: str
    request_id: str
    merchant: str
    currency: str
    debit_account: str
    credit_account: str
    amount: int
    description: str
    posted_at: datetime


@dataclass(frozen=True)
class ExportBatch:
    batch_id: str
    entries: list[ExportEntry]


def _unexported(limit: int) -> Select[LedgerOutboxRow, LedgerTransferRow]:
    return (
        select(LedgerOutboxRow, LedgerTransferRow)
        .join(LedgerTransferRow, col(LedgerTransferRow.id) == col(LedgerOutboxRow.transfer_id))
        .where(col(LedgerOutboxRow.exported_batch).is_(None))
        .order_by(col(LedgerOutboxRow.id))
        .limit(limit)
    )


def export(
    db: Database, write: Callable[[ExportBatch], None], *, limit: int = 10_000, batch_id: str | None = None
) -> ExportBatch:
    """Claim up to `limit` unexported entries, hand them to `write`, then mark them exported."""
    batch = batch_id or f"b{utcnow():%Y%m%d%H%M%S}-{uuid.uuid4().hex[:8]}"
    with db.transaction() as session:
        claimed = claim_unlocked(_unexported(limit), of=LedgerOutboxRow)
        rows = session.execute(claimed).all()
        result = ExportBatch(batch, [_entry(outbox, transfer) for outbox, transfer in rows])
        if not rows:
            return result
        write(result)  # raising rolls the claim back: nothing is marked
        now = utcnow()
        for outbox, _ in rows:
            outbox.exported_batch = batch
            outbox.exported_at = now
    return result


def peek(db: Database, *, limit: int = 10_000) -> list[ExportEntry]:
    """The entries the next export would send, left unexported."""
    with db.transaction() as session:
        return [_entry(outbox, transfer) for outbox, transfer in session.execute(_unexported(limit)).all()]


def last_batch(db: Database) -> str | None:
    """The batch exported most recently; None before the first."""
    with db.transaction() as session:
        latest = (
            select(col(LedgerOutboxRow.exported_batch))
            .where(col(LedgerOutboxRow.exported_batch).is_not(None))
            .order_by(col(LedgerOutboxRow.exported_at).desc(), col(LedgerOutboxRow.id).desc())
            .limit(1)
        )
        return session.execute(latest).scalar_one_or_none()


def _entry(outbox: LedgerOutboxRow, transfer: LedgerTransferRow) -> ExportEntry:
    assert outbox.id is not None
    return ExportEntry(
        entry_id=outbox.id,
        transfer_key=transfer.transfer_key,
        request_id=transfer.request_id,
        merchant=transfer.merchant,
        currency=transfer.currency,
        debit_account=transfer.debit_account,
        credit_account=transfer.credit_account,
        amount=transfer.amount,
        description=transfer.description,
        # SQLite gives back the stored UTC time without its zone: the ERP gets it with one, always
        posted_at=transfer.created_at
        if transfer.created_at.tzinfo
        else transfer.created_at.replace(tzinfo=UTC),
    )
