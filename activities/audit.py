"""Audit rows: those activities write about their own calls, and the workflow's own steps written
while it waits (a review that lasts weeks shows who already approved)."""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio import activity

from activities.errors import refuse_foreign_refund
from adapters.db import audit
from adapters.db.engine import Database
from domain.contracts import AuditEvent, AuditRows
from domain.naming import Activity


class AuditActivities:
    def __init__(self, db: Database) -> None:
        self._db = db

    @activity.defn(name=Activity.RECORD_AUDIT)
    def record_audit(self, rows: AuditRows) -> None:
        """Write the rows once (each is keyed: a retried or replayed write adds nothing)."""
        refuse_foreign_refund(rows.request_id)
        with self._db.transaction() as session:
            audit.record(session, rows.request_id, rows.payment_reference, rows.audit)


def activity_event(
    key: str,
    step: str,
    *,
    actor: str = "system",
    reason_code: str | None = None,
    psp_request_id: str | None = None,
    psp_response_ms: int | None = None,
    detail: dict[str, str] | None = None,
) -> AuditEvent:
    return AuditEvent(
        key=key,
        step=step,
        actor=actor,
        reason_code=reason_code,
        psp_request_id=psp_request_id,
        psp_response_ms=psp_response_ms,
        detail=detail or {},
        at=datetime.now(UTC),
    )
