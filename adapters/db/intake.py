"""Request intake: remember each request id with its body digest, exactly once."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import update
from sqlmodel import col

from adapters.db.engine import Database
from adapters.db.models import RefundRequestRow, utcnow


class Admission(StrEnum):
    NEW = "new"  # first time: start the workflow
    REPLAY = "replay"  # same id, same body
    CONFLICT = "conflict"  # same id, another body


@dataclass(frozen=True)
class IntakeDecision:
    admission: Admission
    workflow_started: bool


def admit(db: Database, request_id: str, body_sha256: str, workflow_id: str) -> IntakeDecision:
    with db.transaction() as session:
        inserted = db.insert_ignoring_conflicts(
            session,
            RefundRequestRow,
            [
                {
                    "request_id": request_id,
                    "body_sha256": body_sha256,
                    "workflow_id": workflow_id,
                    "workflow_started": False,
                    "received_at": utcnow(),
                }
            ],
        )
        if inserted:
            return IntakeDecision(Admission.NEW, False)
        row = session.get(RefundRequestRow, request_id)
        assert row is not None
        if row.body_sha256 != body_sha256:
            return IntakeDecision(Admission.CONFLICT, row.workflow_started)
        return IntakeDecision(Admission.REPLAY, row.workflow_started)


def mark_started(db: Database, request_id: str) -> None:
    with db.transaction() as session:
        session.execute(
            update(RefundRequestRow)
            .where(col(RefundRequestRow.request_id) == request_id)
            .values(workflow_started=True)
        )
