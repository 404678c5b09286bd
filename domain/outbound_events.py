"""Events the merchant's own systems hear (its ERP, order system, warehouse, help desk): which step of
a refund announces which event, each event's stable id, and how long a failing endpoint is retried.

An event is born from an audit row, in the transaction that writes the row (adapters/db/audit.py):
nothing is announced that did not happen, nothing that happened goes unannounced. Its id is derived
from the row's own key, so a retried step announces nothing twice.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from enum import StrEnum

from domain.status import RefundStatus


class EventType(StrEnum):
    REFUND_RECEIVED = "refund.received"  # checked against the PSP's record of the payment
    REFUND_AWAITING_REVIEW = "refund.awaiting_review"
    REFUND_SUCCEEDED = "refund.succeeded"  # the PSP paid it back and the books are posted
    REFUND_FAILED = "refund.failed"
    REFUND_REJECTED = "refund.rejected"  # refused by validation or a reviewer: nothing moved
    REFUND_NEEDS_ATTENTION = "refund.needs_attention"
    REFUND_REVERSED = "refund.reversed"  # the PSP failed a refund it had reported as paid
    REFUND_CANCELLED = "refund.cancelled"
    RETURN_RECEIVED = "return.received"  # goods came back to the warehouse, sellable or not
    INVENTORY_RESTOCKED = "inventory.restocked"  # units put back on sale
    LEDGER_POSTED = "ledger.posted"
    FRAUD_WARNING_REFUNDED = "fraud_warning.refunded"  # a warning made policy refund the payment


# the status a `status_changed` row ends in, and the event it announces
_BY_STATUS = {
    RefundStatus.AWAITING_REVIEW.value: EventType.REFUND_AWAITING_REVIEW,
    RefundStatus.SUCCEEDED.value: EventType.REFUND_SUCCEEDED,
    RefundStatus.FAILED.value: EventType.REFUND_FAILED,
    RefundStatus.REJECTED.value: EventType.REFUND_REJECTED,
    RefundStatus.NEEDS_ATTENTION.value: EventType.REFUND_NEEDS_ATTENTION,
    RefundStatus.CANCELLED.value: EventType.REFUND_CANCELLED,
}
# steps that announce whatever their status (their own kind of news)
_BY_STEP = {
    "late_failure_reversed": (EventType.REFUND_REVERSED,),
    "goods_restocked": (EventType.RETURN_RECEIVED, EventType.INVENTORY_RESTOCKED),
    "goods_received_unsellable": (EventType.RETURN_RECEIVED,),
    "ledger_posted": (EventType.LEDGER_POSTED,),
}
FIRST_VERDICT_KEY = "validate:1:verdict"  # the first check against the PSP: the refund is received
FRAUD_WARNING_STEP = "early_fraud_warning"
FRAUD_WARNING_REFUND = "refund"  # the policy's decision that starts a refund


def announced(
    key: str, step: str, status_after: str | None, reason_code: str | None
) -> tuple[EventType, ...]:
    """The events an audit row announces; most announce none."""
    if step == "status_changed":
        found = _BY_STATUS.get(status_after or "")
        return (found,) if found else ()
    if key == FIRST_VERDICT_KEY:
        return (EventType.REFUND_RECEIVED,)
    if step == FRAUD_WARNING_STEP and reason_code == FRAUD_WARNING_REFUND:
        return (EventType.FRAUD_WARNING_REFUNDED,)
    return _BY_STEP.get(step, ())


def event_id(refund: str, key: str, event_type: EventType) -> str:
    """The event's id (the `webhook-id` a receiver dedupes by): the same step of the same refund is
    the same event however often it is written."""
    digest = hashlib.sha256(f"{refund}\0{key}\0{event_type.value}".encode()).hexdigest()
    return f"evt_{digest[:32]}"


def parse_types(given: str) -> tuple[EventType, ...]:
    """Event types from a comma-separated list (`*` for all); an unknown one is a ValueError."""
    names = [name.strip() for name in given.split(",") if name.strip()]
    if not names:
        raise ValueError("name at least one event type, or * for all")
    if names == ["*"]:
        return tuple(EventType)
    unknown = [name for name in names if name not in EventType.__members__.values()]
    if unknown:
        known = ", ".join(t.value for t in EventType)
        raise ValueError(f"unknown event type {', '.join(unknown)}: known are {known}")
    return tuple(dict.fromkeys(EventType(name) for name in names))


RETRY_WINDOW = timedelta(days=3)  # an endpoint failing for this long is disabled
FIRST_RETRY = timedelta(seconds=5)
LONGEST_WAIT = timedelta(hours=1)


def retry_after(failures: int) -> timedelta:
    """How long after its `failures`-th failed attempt a delivery is tried again: doubling from five
    seconds up to an hour (about 80 attempts in three days)."""
    doublings: int = min(max(failures - 1, 0), 20)
    wait: timedelta = FIRST_RETRY * (2**doublings)
    return min(wait, LONGEST_WAIT)
