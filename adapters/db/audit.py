"""The audit trail: one row per step, written in the same transaction as the step's effect, with
the events the step announces to the merchant's own systems (adapters/db/outbound_events.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from pydantic import BaseModel, field_validator
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlmodel import col

from adapters.db import outbound_events
from adapters.db.dialect import insert_ignoring_conflicts
from adapters.db.models import AuditRow
from domain.contracts import AuditEvent


def record(session: Session, request_id: str, original_reference: str, events: list[AuditEvent]) -> int:
    """Insert events; an event key already written for this refund is skipped (retries).

    A step the workflow took is stamped with its task's start (`workflow.now()` does not move while
    a local activity runs) and written with the next activity, so it can carry an earlier time than
    a row already written. Each row is stamped no earlier than the refund's latest row: the trail's
    time order is the order the steps happened in."""
    floor = _latest(session, request_id)
    stamps = []
    for event in events:
        floor = event.at if floor is None or event.at > floor else floor
        stamps.append(floor)
    rows = [
        {
            "request_id": request_id,
            "event_key": event.key,
            "step": event.step,
            "actor": event.actor,
            "original_reference": original_reference,
            "reason_code": event.reason_code,
            "status_before": event.status_before.value if event.status_before else None,
            "status_after": event.status_after.value if event.status_after else None,
            "psp_request_id": event.psp_request_id,
            "psp_response_ms": event.psp_response_ms,
            "detail": json.dumps(event.detail, sort_keys=True),
            "at": at,
        }
        for event, at in zip(events, stamps, strict=True)
    ]
    written = insert_ignoring_conflicts(session, AuditRow, rows)
    outbound_events.announce(session, request_id, list(zip(events, stamps, strict=True)), original_reference)
    return written


class AuditEntry(BaseModel):
    """One row of a refund's audit trail, as the API and the CLI show it."""

    step: str
    actor: str
    at: datetime
    original_reference: str
    reason_code: str | None
    status_before: str | None
    status_after: str | None
    psp_request_id: str | None
    psp_response_ms: int | None
    detail: dict[str, str]

    @field_validator("at")
    @classmethod
    def _in_utc(cls, at: datetime) -> datetime:
        """SQLite hands back UTC times without their zone: every reader gets them with it."""
        return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


class StepEntry(BaseModel):
    request_id: str
    reason_code: str | None
    at: datetime
    actor: str = ""
    detail: dict[str, str] = {}


def entries_with_step(session: Session, step: str) -> list[StepEntry]:
    rows = session.execute(
        select(AuditRow).where(col(AuditRow.step) == step).order_by(col(AuditRow.id))
    ).scalars()
    return [
        StepEntry(
            request_id=r.request_id,
            reason_code=r.reason_code,
            at=r.at,
            actor=r.actor,
            detail=json.loads(r.detail) if r.detail else {},
        )
        for r in rows
    ]


def _latest(session: Session, request_id: str) -> datetime | None:
    latest = session.execute(
        select(func.max(AuditRow.at)).where(col(AuditRow.request_id) == request_id)
    ).scalar_one_or_none()
    if latest is not None and latest.tzinfo is None:  # SQLite keeps no zone; every stamp is UTC
        latest = latest.replace(tzinfo=UTC)
    return latest


def trail(session: Session, request_id: str) -> list[AuditEntry]:
    rows = session.execute(
        select(AuditRow)
        .where(col(AuditRow.request_id) == request_id)
        .order_by(col(AuditRow.at), col(AuditRow.id))  # time order, then the order written
    ).scalars()
    return [
        AuditEntry(
            step=row.step,
            actor=row.actor,
            at=row.at,
            original_reference=row.original_reference,
            reason_code=row.reason_code,
            status_before=row.status_before,
            status_after=row.status_after,
            psp_request_id=row.psp_request_id,
            psp_response_ms=row.psp_response_ms,
            detail=json.loads(row.detail),
        )
        for row in rows
    ]
