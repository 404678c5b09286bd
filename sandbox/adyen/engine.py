"""The Adyen sandbox's durable state and its notification outbox, in the sandbox store's SQLite file.

Tables of its own (`adyen_*`) created in the server's store, so one `transaction()` covers a
modification, its stored idempotent answer and the notification announcing its outcome; a restart
on the same file resumes delivery of whatever was not yet accepted.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import string
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from Adyen.util import generate_notification_sig

from sandbox.store import SandboxStore, StoreTx, now_ms
from sandbox.webhooks import Attempt, OutgoingEvent

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS adyen_payments (
        psp_reference TEXT PRIMARY KEY,
        merchant_account TEXT NOT NULL,
        merchant_reference TEXT NOT NULL,
        amount INTEGER NOT NULL,
        currency TEXT NOT NULL,
        state TEXT NOT NULL,
        created_ms INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS adyen_modifications (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        psp_reference TEXT NOT NULL UNIQUE,
        payment_psp_reference TEXT NOT NULL,
        kind TEXT NOT NULL,
        merchant_reference TEXT NOT NULL,
        amount INTEGER NOT NULL,
        currency TEXT NOT NULL,
        status TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        idempotency_key TEXT,
        created_ms INTEGER NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS adyen_modifications_payment"
    " ON adyen_modifications (payment_psp_reference, seq)",
    """CREATE TABLE IF NOT EXISTS adyen_notifications (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        event_code TEXT NOT NULL,
        psp_reference TEXT NOT NULL,
        payload TEXT NOT NULL,
        url TEXT,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_ms INTEGER,
        last_status INTEGER,
        created_ms INTEGER NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS adyen_notifications_due ON adyen_notifications (next_attempt_ms)"
    " WHERE state = 'pending'",
)
_TABLES = ("adyen_payments", "adyen_modifications", "adyen_notifications")

_REFERENCE_ALPHABET = string.ascii_uppercase + string.digits


def new_psp_reference() -> str:
    """16 characters, like Adyen's pspReference."""
    return "".join(secrets.choice(_REFERENCE_ALPHABET) for _ in range(16))


@dataclass(frozen=True)
class AdyenPayment:
    psp_reference: str
    merchant_account: str
    merchant_reference: str
    amount: int
    currency: str
    state: str  # "authorised" | "captured" | "cancelled"
    created_ms: int


@dataclass(frozen=True)
class AdyenModification:
    psp_reference: str
    payment_psp_reference: str
    kind: str  # "refund" | "cancel" | "reversal"
    merchant_reference: str
    amount: int
    currency: str
    status: str  # "succeeded" | "failed" | "refund_failed" | "refunded_reversed" (its notifications)
    reason: str
    idempotency_key: str | None
    created_ms: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Notification:
    seq: int
    id: str
    event_code: str
    psp_reference: str
    payload: str
    url: str | None
    state: str  # "pending" | "held" | "delivered" | "failed" | "no_endpoint"
    attempts: int
    next_attempt_ms: int | None
    last_status: int | None
    created_ms: int

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "payload": json.loads(self.payload)}


def _row(cls: Any, row: sqlite3.Row | None) -> Any:
    return None if row is None else cls(**dict(row))


class AdyenState:
    """Queries on the `adyen_*` tables; every method runs inside the caller's `StoreTx`."""

    def __init__(self, store: SandboxStore) -> None:
        self.store = store
        with store.transaction() as tx:
            for statement in _SCHEMA:
                tx.conn.execute(statement)

    # payments --------------------------------------------------------------------------------

    @staticmethod
    def payment(tx: StoreTx, psp_reference: str) -> AdyenPayment | None:
        row = tx.conn.execute(
            "SELECT * FROM adyen_payments WHERE psp_reference = ?", (psp_reference,)
        ).fetchone()
        result: AdyenPayment | None = _row(AdyenPayment, row)
        return result

    @staticmethod
    def insert_payment(tx: StoreTx, payment: AdyenPayment) -> None:
        tx.conn.execute(
            "INSERT INTO adyen_payments (psp_reference, merchant_account, merchant_reference, amount,"
            " currency, state, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                payment.psp_reference,
                payment.merchant_account,
                payment.merchant_reference,
                payment.amount,
                payment.currency,
                payment.state,
                payment.created_ms,
            ),
        )

    @staticmethod
    def set_payment_state(tx: StoreTx, psp_reference: str, state: str) -> None:
        tx.conn.execute("UPDATE adyen_payments SET state = ? WHERE psp_reference = ?", (state, psp_reference))

    @staticmethod
    def refunded(tx: StoreTx, psp_reference: str) -> int:
        """What refunds hold of the capture: successful ones (a late REFUND_FAILED gives it back)."""
        row = tx.conn.execute(
            "SELECT COALESCE(SUM(amount), 0) FROM adyen_modifications"
            " WHERE payment_psp_reference = ? AND kind IN ('refund', 'reversal') AND status = 'succeeded'",
            (psp_reference,),
        ).fetchone()
        return int(row[0])

    # modifications ---------------------------------------------------------------------------

    @staticmethod
    def insert_modification(tx: StoreTx, m: AdyenModification) -> None:
        tx.conn.execute(
            "INSERT INTO adyen_modifications (psp_reference, payment_psp_reference, kind,"
            " merchant_reference, amount, currency, status, reason, idempotency_key, created_ms)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                m.psp_reference,
                m.payment_psp_reference,
                m.kind,
                m.merchant_reference,
                m.amount,
                m.currency,
                m.status,
                m.reason,
                m.idempotency_key,
                m.created_ms,
            ),
        )

    @staticmethod
    def modification(tx: StoreTx, psp_reference: str) -> AdyenModification | None:
        row = tx.conn.execute(
            "SELECT psp_reference, payment_psp_reference, kind, merchant_reference, amount, currency,"
            " status, reason, idempotency_key, created_ms FROM adyen_modifications WHERE psp_reference = ?",
            (psp_reference,),
        ).fetchone()
        result: AdyenModification | None = _row(AdyenModification, row)
        return result

    @staticmethod
    def modifications(tx: StoreTx, payment_psp_reference: str) -> list[AdyenModification]:
        rows = tx.conn.execute(
            "SELECT psp_reference, payment_psp_reference, kind, merchant_reference, amount, currency,"
            " status, reason, idempotency_key, created_ms FROM adyen_modifications"
            " WHERE payment_psp_reference = ? ORDER BY seq",
            (payment_psp_reference,),
        ).fetchall()
        return [_row(AdyenModification, row) for row in rows]

    @staticmethod
    def set_modification_status(tx: StoreTx, psp_reference: str, status: str, reason: str) -> None:
        tx.conn.execute(
            "UPDATE adyen_modifications SET status = ?, reason = ? WHERE psp_reference = ?",
            (status, reason, psp_reference),
        )

    # notifications ---------------------------------------------------------------------------

    @staticmethod
    def insert_notification(
        tx: StoreTx,
        *,
        event_code: str,
        psp_reference: str,
        payload: str,
        url: str | None,
        held: bool,
        delay_ms: int = 0,
    ) -> None:
        state = "no_endpoint" if url is None else "held" if held else "pending"
        created = now_ms()
        identifier = f"{psp_reference}:{event_code}:{created}:{secrets.token_hex(3)}"
        tx.conn.execute(
            "INSERT INTO adyen_notifications (id, event_code, psp_reference, payload, url, state,"
            " next_attempt_ms, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (identifier, event_code, psp_reference, payload, url, state, created + delay_ms, created),
        )

    @staticmethod
    def next_due(tx: StoreTx, now: int) -> Notification | None:
        row = tx.conn.execute(
            "SELECT * FROM adyen_notifications WHERE state = 'pending' AND next_attempt_ms <= ?"
            " ORDER BY next_attempt_ms, seq LIMIT 1",
            (now,),
        ).fetchone()
        result: Notification | None = _row(Notification, row)
        return result

    @staticmethod
    def next_due_ms(tx: StoreTx) -> int | None:
        row = tx.conn.execute(
            "SELECT MIN(next_attempt_ms) FROM adyen_notifications WHERE state = 'pending'"
        ).fetchone()
        return None if row[0] is None else int(row[0])

    @staticmethod
    def record_attempt(
        tx: StoreTx, identifier: str, attempts: int, state: str, next_ms: int | None, status: int | None
    ) -> None:
        tx.conn.execute(
            "UPDATE adyen_notifications SET state = ?, attempts = ?, next_attempt_ms = ?, last_status = ?"
            " WHERE id = ?",
            (state, attempts, next_ms, status, identifier),
        )

    @staticmethod
    def notifications(tx: StoreTx, psp_reference: str | None = None) -> list[Notification]:
        if psp_reference is None:
            rows = tx.conn.execute("SELECT * FROM adyen_notifications ORDER BY seq").fetchall()
        else:
            rows = tx.conn.execute(
                "SELECT * FROM adyen_notifications WHERE psp_reference = ? OR payload LIKE ? ORDER BY seq",
                (psp_reference, f'%"{psp_reference}"%'),
            ).fetchall()
        return [_row(Notification, row) for row in rows]

    @staticmethod
    def release_held(tx: StoreTx, reverse: bool) -> int:
        """Make held notifications due now, oldest first or (out of order) newest first."""
        order = "DESC" if reverse else "ASC"
        rows = tx.conn.execute(
            f"SELECT id FROM adyen_notifications WHERE state = 'held' ORDER BY seq {order}"
        )
        ids = [row["id"] for row in rows.fetchall()]
        start = now_ms()
        for offset, identifier in enumerate(ids):
            tx.conn.execute(
                "UPDATE adyen_notifications SET state = 'pending', next_attempt_ms = ? WHERE id = ?",
                (start + offset, identifier),
            )
        return len(ids)

    @staticmethod
    def reset(tx: StoreTx) -> None:
        for table in _TABLES:
            tx.conn.execute(f"DELETE FROM {table}")


# notification payloads ----------------------------------------------------------------------------


def _event_date() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def notification_item(
    *,
    event_code: str,
    success: bool,
    psp_reference: str,
    merchant_account: str,
    merchant_reference: str,
    amount: int,
    currency: str,
    original_reference: str | None = None,
    reason: str = "",
    hmac_key_hex: str,
    additional_data: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """One NotificationRequestItem, signed with the SDK's own signer (an independent check of ours)."""
    item: dict[str, Any] = {
        "amount": {"currency": currency, "value": amount},
        "eventCode": event_code,
        "eventDate": _event_date(),
        "merchantAccountCode": merchant_account,
        "merchantReference": merchant_reference,
        "paymentMethod": "visa",
        "pspReference": psp_reference,
        "reason": reason,
        "success": "true" if success else "false",
    }
    if original_reference is not None:
        item["originalReference"] = original_reference
    signature = generate_notification_sig(item, hmac_key_hex).decode()
    return {**item, "additionalData": {**(additional_data or {}), "hmacSignature": signature}}


def delivery_payload(items: Sequence[dict[str, Any]]) -> str:
    return json.dumps(
        {"live": "false", "notificationItems": [{"NotificationRequestItem": item} for item in items]}
    )


# delivery ---------------------------------------------------------------------------------------


class NotificationOutbox:
    """`adyen_notifications` for the shared `WebhookSender`: the signature is inside the payload."""

    label = "adyen notification"

    def next_due(self, tx: StoreTx, now: int) -> OutgoingEvent | None:
        due = AdyenState.next_due(tx, now)
        if due is None:
            return None
        assert due.url is not None
        return OutgoingEvent(due.id, "adyen", due.event_code, due.url, due.payload, due.attempts)

    def next_due_ms(self, tx: StoreTx) -> int | None:
        return AdyenState.next_due_ms(tx)

    def headers(self, event: OutgoingEvent) -> dict[str, str]:
        return {"Content-Type": "application/json; charset=utf-8"}

    def record(self, tx: StoreTx, event: OutgoingEvent, attempt: Attempt) -> None:
        AdyenState.record_attempt(
            tx, event.id, attempt.number, attempt.state, attempt.next_attempt_ms, attempt.http_status
        )
