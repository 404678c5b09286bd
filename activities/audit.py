"""Audit rows that activities write about their own calls."""

from __future__ import annotations

from datetime import UTC, datetime

from domain.contracts import AuditEvent


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
