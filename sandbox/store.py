"""The sandbox's durable state in SQLite: payments, refunds, idempotency records, webhook outbox.

One connection guarded by one lock; every unit of work is a `transaction()` (BEGIN IMMEDIATE), so
a restart on the same file loses nothing that was answered. `state_path=None` keeps it in memory.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS stripe_settlements (
    payment_id TEXT PRIMARY KEY,
    currency TEXT NOT NULL,
    capture_rate TEXT NOT NULL,
    refund_rate TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS stripe_payments (
    id TEXT PRIMARY KEY,
    charge_id TEXT UNIQUE,
    amount INTEGER NOT NULL,
    currency TEXT NOT NULL,
    capture_method TEXT NOT NULL,
    status TEXT NOT NULL,
    amount_captured INTEGER NOT NULL DEFAULT 0,
    refund_behavior TEXT NOT NULL,
    settle_after_ms INTEGER NOT NULL,
    metadata TEXT NOT NULL,
    created INTEGER NOT NULL,
    canceled_at INTEGER,
    cancellation_reason TEXT
);
CREATE TABLE IF NOT EXISTS stripe_refunds (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    payment_id TEXT NOT NULL,
    charge_id TEXT NOT NULL,
    amount INTEGER NOT NULL,
    currency TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    metadata TEXT NOT NULL,
    failure_reason TEXT,
    created INTEGER NOT NULL,
    settle_at_ms INTEGER,
    settle_to TEXT,
    idempotency_key TEXT
);
CREATE INDEX IF NOT EXISTS stripe_refunds_payment ON stripe_refunds (payment_id, seq);
CREATE INDEX IF NOT EXISTS stripe_refunds_settle ON stripe_refunds (settle_at_ms)
    WHERE settle_at_ms IS NOT NULL;
CREATE TABLE IF NOT EXISTS idempotency (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    state TEXT NOT NULL,
    status_code INTEGER,
    body BLOB,
    request_id TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE TABLE IF NOT EXISTS webhook_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    provider TEXT NOT NULL,
    type TEXT NOT NULL,
    payload TEXT NOT NULL,
    url TEXT,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER,
    created_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_events_due ON webhook_events (next_attempt_ms)
    WHERE state = 'pending';
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    type TEXT NOT NULL,
    url TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    http_status INTEGER,
    error TEXT,
    at_ms INTEGER NOT NULL
);
"""

_TABLES = (
    "stripe_settlements",
    "stripe_payments",
    "stripe_refunds",
    "idempotency",
    "webhook_events",
    "webhook_deliveries",
)


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class PaymentRow:
    """A Stripe PaymentIntent and its one charge (`charge_id` None until confirmed)."""

    id: str
    charge_id: str | None
    amount: int
    currency: str
    capture_method: str
    status: str
    amount_captured: int
    refund_behavior: str
    settle_after_ms: int
    metadata: dict[str, str]
    created: int
    canceled_at: int | None = None
    cancellation_reason: str | None = None


@dataclass(frozen=True)
class Settlement:
    """The merchant's balance is in `currency`: captures convert at one rate, refunds at another."""

    currency: str
    capture_rate: Decimal
    refund_rate: Decimal


@dataclass
class RefundRow:
    id: str
    payment_id: str
    charge_id: str
    amount: int
    currency: str
    status: str
    reason: str | None
    metadata: dict[str, str]
    created: int
    failure_reason: str | None = None
    settle_at_ms: int | None = None
    settle_to: str | None = None
    idempotency_key: str | None = None
    seq: int = 0


@dataclass(frozen=True)
class IdempotencyRecord:
    fingerprint: str
    state: str  # "executing" | "done"
    status_code: int | None
    body: bytes | None
    request_id: str


@dataclass(frozen=True)
class EventRow:
    id: str
    provider: str
    type: str
    payload: str
    url: str | None
    state: str  # "pending" | "delivered" | "failed" | "no_endpoint"
    attempts: int
    next_attempt_ms: int | None
    created_ms: int


@dataclass(frozen=True)
class DeliveryRow:
    event_id: str
    provider: str
    type: str
    url: str
    attempt: int
    http_status: int | None
    error: str | None
    at_ms: int


def _payment(row: sqlite3.Row) -> PaymentRow:
    return PaymentRow(
        id=row["id"],
        charge_id=row["charge_id"],
        amount=row["amount"],
        currency=row["currency"],
        capture_method=row["capture_method"],
        status=row["status"],
        amount_captured=row["amount_captured"],
        refund_behavior=row["refund_behavior"],
        settle_after_ms=row["settle_after_ms"],
        metadata=json.loads(row["metadata"]),
        created=row["created"],
        canceled_at=row["canceled_at"],
        cancellation_reason=row["cancellation_reason"],
    )


def _refund(row: sqlite3.Row) -> RefundRow:
    return RefundRow(
        seq=row["seq"],
        id=row["id"],
        payment_id=row["payment_id"],
        charge_id=row["charge_id"],
        amount=row["amount"],
        currency=row["currency"],
        status=row["status"],
        reason=row["reason"],
        metadata=json.loads(row["metadata"]),
        failure_reason=row["failure_reason"],
        created=row["created"],
        settle_at_ms=row["settle_at_ms"],
        settle_to=row["settle_to"],
        idempotency_key=row["idempotency_key"],
    )


def _event(row: sqlite3.Row) -> EventRow:
    return EventRow(
        id=row["id"],
        provider=row["provider"],
        type=row["type"],
        payload=row["payload"],
        url=row["url"],
        state=row["state"],
        attempts=row["attempts"],
        next_attempt_ms=row["next_attempt_ms"],
        created_ms=row["created_ms"],
    )


@dataclass
class StoreTx:
    """The queries of one transaction. Only valid inside `SandboxStore.transaction()`."""

    conn: sqlite3.Connection
    _after_commit: list[Callable[[], None]] = field(default_factory=list)

    def after_commit(self, callback: Callable[[], None]) -> None:
        self._after_commit.append(callback)

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        self.conn.execute("SAVEPOINT sp")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK TO sp")
            self.conn.execute("RELEASE sp")
            raise
        self.conn.execute("RELEASE sp")

    # payments --------------------------------------------------------------------------------

    def get_payment(self, payment_id: str) -> PaymentRow | None:
        row = self.conn.execute("SELECT * FROM stripe_payments WHERE id = ?", (payment_id,)).fetchone()
        return _payment(row) if row else None

    def get_payment_by_charge(self, charge_id: str) -> PaymentRow | None:
        row = self.conn.execute("SELECT * FROM stripe_payments WHERE charge_id = ?", (charge_id,)).fetchone()
        return _payment(row) if row else None

    def insert_payment(self, p: PaymentRow) -> None:
        self.conn.execute(
            "INSERT INTO stripe_payments (id, charge_id, amount, currency, capture_method, status,"
            " amount_captured, refund_behavior, settle_after_ms, metadata, created, canceled_at,"
            " cancellation_reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                p.id,
                p.charge_id,
                p.amount,
                p.currency,
                p.capture_method,
                p.status,
                p.amount_captured,
                p.refund_behavior,
                p.settle_after_ms,
                json.dumps(p.metadata),
                p.created,
                p.canceled_at,
                p.cancellation_reason,
            ),
        )

    def update_payment_state(self, p: PaymentRow) -> None:
        self.conn.execute(
            "UPDATE stripe_payments SET status = ?, amount_captured = ?, canceled_at = ?,"
            " cancellation_reason = ? WHERE id = ?",
            (p.status, p.amount_captured, p.canceled_at, p.cancellation_reason, p.id),
        )

    def set_settlement(self, payment_id: str, settlement: Settlement) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO stripe_settlements (payment_id, currency, capture_rate, refund_rate)"
            " VALUES (?, ?, ?, ?)",
            (payment_id, settlement.currency, str(settlement.capture_rate), str(settlement.refund_rate)),
        )

    def settlement_of(self, payment_id: str) -> Settlement | None:
        row = self.conn.execute(
            "SELECT currency, capture_rate, refund_rate FROM stripe_settlements WHERE payment_id = ?",
            (payment_id,),
        ).fetchone()
        if row is None:
            return None
        return Settlement(row["currency"], Decimal(row["capture_rate"]), Decimal(row["refund_rate"]))

    def refunded_amount(self, payment_id: str) -> int:
        """Refunds that hold money: pending ones count, failed or canceled ones gave it back."""
        row = self.conn.execute(
            "SELECT COALESCE(SUM(amount), 0) FROM stripe_refunds"
            " WHERE payment_id = ? AND status IN ('pending', 'requires_action', 'succeeded')",
            (payment_id,),
        ).fetchone()
        return int(row[0])

    # refunds ---------------------------------------------------------------------------------

    def insert_refund(self, r: RefundRow) -> None:
        cursor = self.conn.execute(
            "INSERT INTO stripe_refunds (id, payment_id, charge_id, amount, currency, status, reason,"
            " metadata, failure_reason, created, settle_at_ms, settle_to, idempotency_key)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                r.id,
                r.payment_id,
                r.charge_id,
                r.amount,
                r.currency,
                r.status,
                r.reason,
                json.dumps(r.metadata),
                r.failure_reason,
                r.created,
                r.settle_at_ms,
                r.settle_to,
                r.idempotency_key,
            ),
        )
        r.seq = int(cursor.lastrowid or 0)

    def get_refund(self, refund_id: str) -> RefundRow | None:
        row = self.conn.execute("SELECT * FROM stripe_refunds WHERE id = ?", (refund_id,)).fetchone()
        return _refund(row) if row else None

    def settle_refund(self, refund_id: str, status: str, failure_reason: str | None) -> None:
        self.conn.execute(
            "UPDATE stripe_refunds SET status = ?, failure_reason = ?, settle_at_ms = NULL,"
            " settle_to = NULL WHERE id = ?",
            (status, failure_reason, refund_id),
        )

    def list_refunds(
        self,
        *,
        payment_id: str | None,
        limit: int,
        after_seq: int | None = None,
        before_seq: int | None = None,
    ) -> tuple[list[RefundRow], bool]:
        """Newest first, Stripe's cursor semantics: `after_seq` pages on, `before_seq` back."""
        where: list[str] = []
        args: list[Any] = []
        if payment_id is not None:
            where.append("payment_id = ?")
            args.append(payment_id)
        if after_seq is not None:
            where.append("seq < ?")
            args.append(after_seq)
        if before_seq is not None:
            where.append("seq > ?")
            args.append(before_seq)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        order = "ASC" if before_seq is not None and after_seq is None else "DESC"
        rows = self.conn.execute(
            f"SELECT * FROM stripe_refunds {clause} ORDER BY seq {order} LIMIT ?",
            (*args, limit + 1),
        ).fetchall()
        refunds = [_refund(row) for row in rows[:limit]]
        if order == "ASC":
            refunds.reverse()
        return refunds, len(rows) > limit

    def refunds_for_payment(self, payment_id: str) -> list[RefundRow]:
        rows = self.conn.execute(
            "SELECT * FROM stripe_refunds WHERE payment_id = ? ORDER BY seq", (payment_id,)
        ).fetchall()
        return [_refund(row) for row in rows]

    def due_settlements(self, now: int) -> list[RefundRow]:
        rows = self.conn.execute(
            "SELECT * FROM stripe_refunds WHERE settle_at_ms IS NOT NULL AND settle_at_ms <= ?"
            " ORDER BY settle_at_ms, seq",
            (now,),
        ).fetchall()
        return [_refund(row) for row in rows]

    def next_settlement_ms(self) -> int | None:
        row = self.conn.execute(
            "SELECT MIN(settle_at_ms) FROM stripe_refunds WHERE settle_at_ms IS NOT NULL"
        ).fetchone()
        return None if row[0] is None else int(row[0])

    # idempotency -----------------------------------------------------------------------------

    def idempotency_get(self, scope: str, key: str) -> IdempotencyRecord | None:
        row = self.conn.execute(
            "SELECT fingerprint, state, status_code, body, request_id FROM idempotency"
            " WHERE scope = ? AND key = ?",
            (scope, key),
        ).fetchone()
        if row is None:
            return None
        return IdempotencyRecord(
            fingerprint=row["fingerprint"],
            state=row["state"],
            status_code=row["status_code"],
            body=bytes(row["body"]) if row["body"] is not None else None,
            request_id=row["request_id"],
        )

    def idempotency_begin(self, scope: str, key: str, fingerprint: str, request_id: str) -> None:
        self.conn.execute(
            "INSERT INTO idempotency (scope, key, fingerprint, state, request_id, created_ms)"
            " VALUES (?, ?, ?, 'executing', ?, ?)",
            (scope, key, fingerprint, request_id, now_ms()),
        )

    def idempotency_complete(self, scope: str, key: str, status_code: int, body: bytes) -> None:
        self.conn.execute(
            "UPDATE idempotency SET state = 'done', status_code = ?, body = ? WHERE scope = ? AND key = ?",
            (status_code, body, scope, key),
        )

    def idempotency_forget(self, scope: str, key: str) -> None:
        self.conn.execute("DELETE FROM idempotency WHERE scope = ? AND key = ?", (scope, key))

    def idempotency_executing(self) -> list[str]:
        rows = self.conn.execute("SELECT key FROM idempotency WHERE state = 'executing'").fetchall()
        return [row["key"] for row in rows]

    # webhook outbox --------------------------------------------------------------------------

    def insert_event(self, event: EventRow) -> None:
        self.conn.execute(
            "INSERT INTO webhook_events (id, provider, type, payload, url, state, attempts,"
            " next_attempt_ms, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                event.id,
                event.provider,
                event.type,
                event.payload,
                event.url,
                event.state,
                event.attempts,
                event.next_attempt_ms,
                event.created_ms,
            ),
        )

    def next_due_event(self, now: int) -> EventRow | None:
        row = self.conn.execute(
            "SELECT * FROM webhook_events WHERE state = 'pending' AND next_attempt_ms <= ?"
            " ORDER BY next_attempt_ms, seq LIMIT 1",
            (now,),
        ).fetchone()
        return _event(row) if row else None

    def next_event_ms(self) -> int | None:
        row = self.conn.execute(
            "SELECT MIN(next_attempt_ms) FROM webhook_events WHERE state = 'pending'"
        ).fetchone()
        return None if row[0] is None else int(row[0])

    def record_attempt(
        self, event_id: str, delivery: DeliveryRow, state: str, next_attempt_ms: int | None
    ) -> None:
        self.conn.execute(
            "UPDATE webhook_events SET state = ?, attempts = ?, next_attempt_ms = ? WHERE id = ?",
            (state, delivery.attempt, next_attempt_ms, event_id),
        )
        self.conn.execute(
            "INSERT INTO webhook_deliveries (event_id, provider, type, url, attempt, http_status,"
            " error, at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                delivery.event_id,
                delivery.provider,
                delivery.type,
                delivery.url,
                delivery.attempt,
                delivery.http_status,
                delivery.error,
                delivery.at_ms,
            ),
        )

    def list_events(self) -> list[EventRow]:
        rows = self.conn.execute("SELECT * FROM webhook_events ORDER BY seq").fetchall()
        return [_event(row) for row in rows]

    def list_deliveries(self) -> list[DeliveryRow]:
        rows = self.conn.execute(
            "SELECT event_id, provider, type, url, attempt, http_status, error, at_ms"
            " FROM webhook_deliveries ORDER BY seq"
        ).fetchall()
        return [DeliveryRow(**dict(row)) for row in rows]

    def reset(self) -> None:
        for table in _TABLES:
            self.conn.execute(f"DELETE FROM {table}")


class SandboxStore:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(
            str(path) if path is not None else ":memory:",
            isolation_level=None,
            check_same_thread=False,
        )
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        if path is not None:
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")
        self._conn.executescript(_SCHEMA)
        with self.transaction() as tx:
            # Nothing executes across a restart: effects and stored responses commit together,
            # so a key still marked executing produced nothing and may run again.
            tx.conn.execute("DELETE FROM idempotency WHERE state = 'executing'")

    @contextmanager
    def transaction(self) -> Iterator[StoreTx]:
        tx = StoreTx(self._conn)
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield tx
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        for callback in tx._after_commit:
            callback()

    def close(self) -> None:
        with self._lock:
            self._conn.close()
