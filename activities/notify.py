"""Tell ops a refund needs them: a JSON POST to the configured hook, and an audit row either way."""

from __future__ import annotations

import httpx
from temporalio import activity

from activities.audit import activity_event
from adapters.db import audit
from adapters.db.engine import Database
from domain.contracts import NotifyInput
from domain.naming import Activity

NOTIFY_TIMEOUT_SECONDS = 10.0


class NotifyActivities:
    def __init__(self, db: Database, hook_url: str) -> None:
        self._db = db
        self._hook_url = hook_url

    @activity.defn(name=Activity.NOTIFY)
    def notify(self, input: NotifyInput) -> bool:
        """True when the hook took it; no hook configured only audits. A failing hook is retried."""
        delivered = False
        if self._hook_url:
            body = {
                "event": input.event,
                "request_id": input.request_id,
                "message": input.message,
                **input.detail,
            }
            response = httpx.post(self._hook_url, json=body, timeout=NOTIFY_TIMEOUT_SECONDS)
            response.raise_for_status()
            delivered = True
        event = activity_event(
            f"notify:{input.event}",
            "ops_notified" if delivered else "ops_notification_skipped",
            reason_code=input.event,
            detail={"hook": "configured" if delivered else "none", "message": input.message[:500]},
        )
        with self._db.transaction() as session:
            audit.record(session, input.request_id, input.payment_reference, [*input.audit, event])
        return delivered
