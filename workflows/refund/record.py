"""What a refund shows and remembers while it runs: its state, its audit rows not yet written, and
its search attributes not yet upserted."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate

with workflow.unsafe.imports_passed_through():
    from domain.actors import SYSTEM, Actor
    from domain.contracts import AuditEvent, RefundState
    from domain.naming import SA_STATUS
    from domain.status import RefundStatus


class RefundRecord:
    """The refund's state, changed only here. Audit rows for steps taken in workflow code ride along
    with the next activity; search attributes are upserted together, once per workflow task, before
    the workflow next calls an activity or waits."""

    def __init__(self, state: RefundState) -> None:
        self.state = state
        self._audit: list[AuditEvent] = []
        self._audit_seq = 0
        self._attributes: dict[str, SearchAttributeUpdate[Any]] = {}

    def update(self, **changes: object) -> None:
        self.state = self.state.model_copy(update=changes)

    def set_status(self, status: RefundStatus, *, audited: bool = True) -> None:
        if status is self.state.status:
            return
        before = self.state.status
        self.update(status=status)
        self.publish(SA_STATUS.value_set(status.value))
        if audited:
            self.note("status_changed", status_before=before, status_after=status)

    def note(
        self,
        step: str,
        *,
        actor: Actor = SYSTEM,
        reason_code: str | None = None,
        status_before: RefundStatus | None = None,
        status_after: RefundStatus | None = None,
        detail: dict[str, str] | None = None,
    ) -> None:
        """Buffer an audit row for a step taken in workflow code; the next activity writes it."""
        self._audit_seq += 1
        self._audit.append(
            AuditEvent(
                key=f"wf:{self._audit_seq}",
                step=step,
                actor=str(actor),
                reason_code=reason_code,
                status_before=status_before,
                status_after=status_after,
                detail=detail or {},
                at=workflow.now(),
            )
        )

    def unwritten(self) -> bool:
        """Whether audit rows wait for an activity to write them."""
        return bool(self._audit)

    def drain_audit(self) -> list[AuditEvent]:
        drained, self._audit = self._audit, []
        return drained

    def publish(self, *updates: SearchAttributeUpdate[Any]) -> None:
        """Queue search attributes; they are upserted together before the workflow next waits."""
        for update in updates:
            self._attributes[update.key.name] = update

    def publish_now(self) -> None:
        if self._attributes:
            workflow.upsert_search_attributes(list(self._attributes.values()))
            self._attributes = {}

    async def wait(self, condition: Callable[[], bool], timeout: timedelta | None = None) -> None:
        """Wait for `condition`, showing what is queued first; a `timeout` raises TimeoutError."""
        self.publish_now()
        await workflow.wait_condition(condition, timeout=timeout)
