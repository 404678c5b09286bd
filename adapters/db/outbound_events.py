"""Outbound events: written with the audit rows that announce them, owed to each endpoint that
hears their type, each endpoint served by one relay at a time, and delivered in order per refund.

`announce` runs inside the audit row's own transaction (adapters/db/audit.py), so an event exists
exactly when its step happened. A delivery is `pending` until its endpoint answers 2xx; a refund's
later event is never sent while an earlier one to the same endpoint is still owed, and every attempt
is kept. One endpoint's failures hold back only that endpoint's deliveries of that refund.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session, aliased
from sqlmodel import col

from adapters.db import event_endpoints
from adapters.db.engine import Database
from adapters.db.models import (
    DeliveryAttemptRow,
    EventDeliveryRow,
    EventEndpointRow,
    OutboundEventRow,
    RefundRequestRow,
    RefundRow,
    ReservationRow,
)
from domain.contracts import AuditEvent
from domain.naming import booked_owner
from domain.outbound_events import RETRY_WINDOW, EventType, announced, event_id, retry_after

PENDING = "pending"
DELIVERED = "delivered"
ANSWER_KEPT = 500  # characters of an endpoint's answer kept with the attempt


def announce(
    session: Session, refund: str, rows: Sequence[tuple[AuditEvent, datetime]], payment_reference: str = ""
) -> int:
    """The events these audit rows announce, each written once and owed to every endpoint of the
    refund's merchant that hears its type; how many were new."""
    wanted = [
        (event_id(refund, event.key, kind), kind, event, at)
        for event, at in rows
        for kind in announced(
            event.key, event.step, event.status_after.value if event.status_after else None, event.reason_code
        )
    ]
    if not wanted:
        return 0
    ids = [wanted_id for wanted_id, *_ in wanted]
    known = set(
        session.execute(
            select(col(OutboundEventRow.event_id)).where(col(OutboundEventRow.event_id).in_(ids))
        ).scalars()
    )
    fresh = [item for item in wanted if item[0] not in known]
    if not fresh:
        return 0
    merchant, _ = booked_owner(refund)
    endpoints = event_endpoints.subscribed(session, merchant)
    facts = _facts(session, refund, payment_reference)
    for new_id, kind, event, at in fresh:
        body = _body(new_id, kind, event, at, refund, facts)
        row = OutboundEventRow(
            event_id=new_id,
            merchant=merchant,
            refund=refund,
            event_type=kind.value,
            payload=json.dumps(body, separators=(",", ":"), sort_keys=True),
            created_at=at,
        )
        session.add(row)
        session.flush()
        assert row.seq is not None
        for endpoint in endpoints:
            if endpoint.hears(kind):
                session.add(
                    EventDeliveryRow(
                        event_seq=row.seq,
                        endpoint_id=endpoint.endpoint_id,
                        refund=refund,
                        state=PENDING,
                        next_attempt_at=at,
                    )
                )
    return len(fresh)


@dataclass(frozen=True)
class Due:
    """A delivery to make now: the event's exact body, as it was signed and is sent again."""

    delivery_id: int
    event_id: str
    payload: str


def endpoints_due(db: Database, now: datetime) -> list[str]:
    """Enabled endpoints owed a delivery that is due, and no other relay serves now."""
    with db.transaction() as session:
        query = (
            select(col(EventDeliveryRow.endpoint_id))
            .join(EventEndpointRow, col(EventEndpointRow.endpoint_id) == col(EventDeliveryRow.endpoint_id))
            .where(
                col(EventDeliveryRow.state) == PENDING,
                col(EventDeliveryRow.next_attempt_at) <= now,
                col(EventEndpointRow.enabled).is_(True),
                or_(col(EventEndpointRow.relay_until).is_(None), col(EventEndpointRow.relay_until) <= now),
            )
            .distinct()
        )
        return list(session.execute(query).scalars())


def lease_due(
    db: Database, endpoint_id: str, relay: str, now: datetime, limit: int, lease: timedelta
) -> list[Due]:
    """Serve the endpoint for `lease` (no other relay may, so a refund's events go one after the
    other), and its due deliveries that are each refund's earliest still owed, oldest first: a
    refund waiting for its retry holds back its own later events, never another refund's. Empty
    when another relay serves the endpoint, or it is disabled."""
    with db.transaction() as session:
        endpoint = col(EventEndpointRow.endpoint_id)
        taken = session.execute(
            update(EventEndpointRow)
            .where(
                endpoint == endpoint_id,
                col(EventEndpointRow.enabled).is_(True),
                or_(
                    col(EventEndpointRow.relay_until).is_(None),
                    col(EventEndpointRow.relay_until) <= now,
                    col(EventEndpointRow.relay_by) == relay,
                ),
            )
            .values(relay_by=relay, relay_until=now + lease)
        )
        if not taken.rowcount:  # type: ignore[attr-defined]
            return []
        earlier = aliased(EventDeliveryRow)
        owed_before = (
            select(col(earlier.id))
            .where(
                col(earlier.endpoint_id) == col(EventDeliveryRow.endpoint_id),
                col(earlier.refund) == col(EventDeliveryRow.refund),
                col(earlier.state) == PENDING,
                col(earlier.event_seq) < col(EventDeliveryRow.event_seq),
            )
            .exists()
        )
        heads = (
            select(EventDeliveryRow, OutboundEventRow)
            .join(OutboundEventRow, col(OutboundEventRow.seq) == col(EventDeliveryRow.event_seq))
            .where(
                col(EventDeliveryRow.endpoint_id) == endpoint_id,
                col(EventDeliveryRow.state) == PENDING,
                col(EventDeliveryRow.next_attempt_at) <= now,
                ~owed_before,
            )
            .order_by(col(EventDeliveryRow.event_seq))
            .limit(limit)
        )
        return [Due(d.id, e.event_id, e.payload) for d, e in session.execute(heads).all() if d.id is not None]


def stop_serving(db: Database, endpoint_id: str, relay: str) -> None:
    """The relay is done with the endpoint for now: another may serve it at once."""
    with db.transaction() as session:
        session.execute(
            update(EventEndpointRow)
            .where(col(EventEndpointRow.endpoint_id) == endpoint_id, col(EventEndpointRow.relay_by) == relay)
            .values(relay_by=None, relay_until=None)
        )


@dataclass(frozen=True)
class Attempt:
    at: datetime
    status_code: int | None  # None: no answer
    latency_ms: int
    answer: str

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def kept_text(answer: str) -> str:
    """An endpoint's answer as it can be stored: bounded, and no NUL (which PostgreSQL's text
    refuses: an attempt that cannot be kept would be retried forever and explain nothing)."""
    return answer[:ANSWER_KEPT].replace("\x00", "\\0")


def record_attempt(db: Database, endpoint_id: str, due: Due, attempt: Attempt) -> bool:
    """Keep the attempt; a 2xx delivers, anything else waits its backoff. True when this failure
    ended the endpoint's three days of retries and disabled it."""
    with db.transaction() as session:
        delivery = session.get(EventDeliveryRow, due.delivery_id)
        if delivery is None:
            return False
        session.add(
            DeliveryAttemptRow(
                delivery_id=due.delivery_id,
                attempted_at=attempt.at,
                status_code=attempt.status_code,
                latency_ms=attempt.latency_ms,
                answer=kept_text(attempt.answer),
            )
        )
        delivery.attempts += 1
        if attempt.delivered:
            delivery.state, delivery.delivered_at = DELIVERED, attempt.at
            return False
        first = _utc(delivery.first_failure_at) if delivery.first_failure_at else attempt.at
        delivery.first_failure_at = first
        delivery.next_attempt_at = attempt.at + retry_after(delivery.attempts)
        if attempt.at - first < RETRY_WINDOW:
            return False
        said = f"answered {attempt.status_code}" if attempt.status_code else kept_text(attempt.answer)[:200]
        why = f"failing since {first:%Y-%m-%d %H:%M} UTC; last attempt {said}"
        return event_endpoints.disable(session, endpoint_id, why)


def redeliver(db: Database, event: str, endpoint_id: str | None, now: datetime) -> int:
    """Send an event again (to one endpoint, or to every endpoint it was owed to); how many."""
    with db.transaction() as session:
        seq = session.execute(
            select(col(OutboundEventRow.seq)).where(col(OutboundEventRow.event_id) == event)
        ).scalar_one_or_none()
        if seq is None:
            return 0
        query = update(EventDeliveryRow).where(col(EventDeliveryRow.event_seq) == seq)
        if endpoint_id is not None:
            query = query.where(col(EventDeliveryRow.endpoint_id) == endpoint_id)
        done = session.execute(query.values(state=PENDING, next_attempt_at=now, first_failure_at=None))
        return int(done.rowcount or 0)  # type: ignore[attr-defined]


def replay(db: Database, endpoint_id: str, since: datetime, until: datetime, now: datetime) -> int:
    """Owe an endpoint every event of its merchant's, of the types it hears, made in [since, until):
    the ones it was owed go again, the ones from before it existed are added; how many."""
    with db.transaction() as session:
        endpoint = event_endpoints.get(session, endpoint_id)
        if endpoint is None:
            return 0
        merchant = col(OutboundEventRow.merchant)
        events = (
            session.execute(
                select(OutboundEventRow).where(
                    merchant.is_(None) if endpoint.merchant is None else merchant == endpoint.merchant,
                    col(OutboundEventRow.created_at) >= since,
                    col(OutboundEventRow.created_at) < until,
                    col(OutboundEventRow.event_type).in_([t.value for t in endpoint.event_types]),
                )
            )
            .scalars()
            .all()
        )
        for event in events:
            assert event.seq is not None
            delivery = session.execute(
                select(EventDeliveryRow).where(
                    col(EventDeliveryRow.event_seq) == event.seq,
                    col(EventDeliveryRow.endpoint_id) == endpoint_id,
                )
            ).scalar_one_or_none()
            if delivery is None:
                session.add(
                    EventDeliveryRow(
                        event_seq=event.seq,
                        endpoint_id=endpoint_id,
                        refund=event.refund,
                        state=PENDING,
                        next_attempt_at=now,
                    )
                )
            else:
                delivery.state, delivery.next_attempt_at = PENDING, now
        return len(events)


def pending_count(db: Database) -> dict[str, int]:
    """Deliveries still owed, per endpoint."""
    with db.transaction() as session:
        rows = session.execute(
            select(col(EventDeliveryRow.endpoint_id), func.count())
            .where(col(EventDeliveryRow.state) == PENDING)
            .group_by(col(EventDeliveryRow.endpoint_id))
        ).all()
        return {endpoint: int(count) for endpoint, count in rows}


@dataclass(frozen=True)
class KeptAttempt:
    endpoint_id: str
    event_id: str
    at: datetime
    status_code: int | None
    latency_ms: int
    answer: str


@dataclass(frozen=True)
class DeliveryState:
    endpoint_id: str
    state: str
    attempts: int
    next_attempt_at: datetime | None
    delivered_at: datetime | None


@dataclass(frozen=True)
class KeptEvent:
    event_id: str
    event_type: str
    refund: str
    merchant: str | None
    created_at: datetime
    payload: str
    deliveries: list[DeliveryState]


def attempts_of(session: Session, endpoint_id: str, event: str | None = None) -> list[KeptAttempt]:
    """Every attempt to deliver to an endpoint (of one event), oldest first."""
    query = (
        select(DeliveryAttemptRow, EventDeliveryRow, OutboundEventRow)
        .join(EventDeliveryRow, col(EventDeliveryRow.id) == col(DeliveryAttemptRow.delivery_id))
        .join(OutboundEventRow, col(OutboundEventRow.seq) == col(EventDeliveryRow.event_seq))
        .where(col(EventDeliveryRow.endpoint_id) == endpoint_id)
        .order_by(col(DeliveryAttemptRow.id))
    )
    if event is not None:
        query = query.where(col(OutboundEventRow.event_id) == event)
    return [
        KeptAttempt(
            endpoint_id,
            kept.event_id,
            _utc(attempt.attempted_at),
            attempt.status_code,
            attempt.latency_ms,
            attempt.answer,
        )
        for attempt, _, kept in session.execute(query).all()
    ]


def owed_to(session: Session, endpoint_id: str) -> list[KeptEvent]:
    """The events an endpoint is still owed, in order."""
    query = (
        select(OutboundEventRow)
        .join(EventDeliveryRow, col(OutboundEventRow.seq) == col(EventDeliveryRow.event_seq))
        .where(col(EventDeliveryRow.endpoint_id) == endpoint_id, col(EventDeliveryRow.state) == PENDING)
        .order_by(col(OutboundEventRow.seq))
    )
    return [_kept(session, row) for row in session.execute(query).scalars().all()]


def recent(
    session: Session, *, refund: str | None = None, endpoint_id: str | None = None, limit: int = 50
) -> list[KeptEvent]:
    """The newest events (of one refund, or owed to one endpoint), newest first."""
    query = select(OutboundEventRow).order_by(col(OutboundEventRow.seq).desc()).limit(limit)
    if refund is not None:
        query = query.where(col(OutboundEventRow.refund) == refund)
    if endpoint_id is not None:
        owed = select(col(EventDeliveryRow.event_seq)).where(col(EventDeliveryRow.endpoint_id) == endpoint_id)
        query = query.where(col(OutboundEventRow.seq).in_(owed))
    return [_kept(session, row) for row in session.execute(query).scalars().all()]


def one(session: Session, event: str) -> KeptEvent | None:
    row = session.execute(
        select(OutboundEventRow).where(col(OutboundEventRow.event_id) == event)
    ).scalar_one_or_none()
    return _kept(session, row) if row is not None else None


def _kept(session: Session, row: OutboundEventRow) -> KeptEvent:
    deliveries = (
        session.execute(
            select(EventDeliveryRow)
            .where(col(EventDeliveryRow.event_seq) == row.seq)
            .order_by(col(EventDeliveryRow.id))
        )
        .scalars()
        .all()
    )
    return KeptEvent(
        event_id=row.event_id,
        event_type=row.event_type,
        refund=row.refund,
        merchant=row.merchant,
        created_at=_utc(row.created_at),
        payload=row.payload,
        deliveries=[
            DeliveryState(
                endpoint_id=d.endpoint_id,
                state=d.state,
                attempts=d.attempts,
                next_attempt_at=_utc(d.next_attempt_at) if d.state == PENDING else None,
                delivered_at=_utc(d.delivered_at) if d.delivered_at else None,
            )
            for d in deliveries
        ],
    )


@dataclass(frozen=True)
class EndpointHealth:
    endpoint_id: str
    merchant: str | None
    enabled: bool
    disabled_reason: str | None
    owed: int
    oldest_owed_at: datetime | None  # when the oldest event still owed to it happened


def endpoint_health(session: Session) -> list[EndpointHealth]:
    """Each endpoint: enabled or not, how many deliveries it is owed and since when."""
    owed = {
        endpoint: (int(count), oldest)
        for endpoint, count, oldest in session.execute(
            select(
                col(EventDeliveryRow.endpoint_id), func.count(), func.min(col(OutboundEventRow.created_at))
            )
            .join(OutboundEventRow, col(OutboundEventRow.seq) == col(EventDeliveryRow.event_seq))
            .where(col(EventDeliveryRow.state) == PENDING)
            .group_by(col(EventDeliveryRow.endpoint_id))
        ).all()
    }
    return [
        EndpointHealth(
            endpoint.endpoint_id,
            endpoint.merchant,
            endpoint.enabled,
            endpoint.disabled_reason,
            owed.get(endpoint.endpoint_id, (0, None))[0],
            _utc(oldest) if (oldest := owed.get(endpoint.endpoint_id, (0, None))[1]) is not None else None,
        )
        for endpoint in event_endpoints.listing(session)
    ]


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


@dataclass(frozen=True)
class _Facts:
    provider: str | None
    payment_reference: str | None
    order_id: str | None
    settled: RefundRow | None
    reserved: ReservationRow | None


def _facts(session: Session, refund: str, payment_reference: str) -> _Facts:
    """What the books know of the refund now; a refund refused before it was kept (a disputed
    payment at validation) has only the payment its audit row names."""
    settled = session.get(RefundRow, refund)
    requested = session.get(RefundRequestRow, refund)
    reserved = session.get(ReservationRow, refund)
    first = settled or requested
    return _Facts(
        provider=first.provider if first else None,
        payment_reference=first.payment_reference if first else payment_reference or None,
        order_id=first.order_id if first else None,
        settled=settled,
        reserved=reserved,
    )


def _money(value: int | None, currency: str | None) -> dict[str, Any] | None:
    return {"value": value, "currency": currency} if value is not None and currency else None


def _body(
    new_id: str, kind: EventType, event: AuditEvent, at: datetime, refund: str, facts: _Facts
) -> dict[str, Any]:
    """The event as the merchant reads it: the refund's public facts, never a secret nor who
    reviewed it (the merchant reads that in the audit trail)."""
    settled = facts.settled
    detail = event.detail
    status = event.status_after.value if event.status_after else (settled.status if settled else None)
    if kind is EventType.REFUND_RECEIVED:
        status = "received"
    amount = (
        _money(settled.amount, settled.currency)
        if settled is not None and settled.amount is not None
        else _money(facts.reserved.amount, facts.reserved.currency)
        if facts.reserved is not None
        else _money(int(detail["amount"]), detail.get("currency"))
        if detail.get("amount", "").isdigit()
        else None
    )
    refund_view: dict[str, Any] = {
        "request_id": booked_owner(refund)[1],  # None: adopted from the PSP's dashboard
        "status": status,
        "provider": facts.provider,
        "payment_reference": facts.payment_reference,
        "order_id": facts.order_id,
        "amount": amount,
        "psp_refund_id": settled.psp_refund_id if settled else None,
    }
    data: dict[str, Any] = {"refund": refund_view}
    if event.status_before is not None:
        data["previous_status"] = event.status_before.value
    if kind in _FAILURES:
        # the PSP's or validation's own words for a failure; a reviewer's or an operator's reason
        # (a rejection, a cancellation, what ops must look at) stays in the merchant's audit trail
        said = detail.get("message", "") if kind in _SAID else ""
        data["failure"] = {"code": event.reason_code, "message": said}
    if kind in (EventType.RETURN_RECEIVED, EventType.INVENTORY_RESTOCKED):
        data["receipt"] = _receipt(detail, restocked_only=kind is EventType.INVENTORY_RESTOCKED)
    if kind is EventType.LEDGER_POSTED and detail.get("amount", "").isdigit():
        data["posted"] = _money(int(detail["amount"]), detail.get("currency"))
    if kind is EventType.FRAUD_WARNING_REFUNDED:
        data["fraud_warning"] = {"warning_id": detail.get("warning"), "fraud_type": detail.get("fraud_type")}
    return {
        "id": new_id,
        "type": kind.value,
        "created_at": _utc(at).isoformat().replace("+00:00", "Z"),
        "data": data,
    }


_FAILURES = (
    EventType.REFUND_FAILED,
    EventType.REFUND_REJECTED,
    EventType.REFUND_CANCELLED,
    EventType.REFUND_NEEDS_ATTENTION,
    EventType.REFUND_REVERSED,
)
_SAID = (EventType.REFUND_FAILED, EventType.REFUND_REVERSED)


def _receipt(detail: dict[str, str], *, restocked_only: bool) -> dict[str, Any]:
    """A warehouse receipt per SKU: units received, put back on sale, and not sellable."""
    received = {
        key.partition(":")[2]: int(units) for key, units in detail.items() if key.startswith("received:")
    }
    restocked = {
        key.partition(":")[2]: int(units) for key, units in detail.items() if key.startswith("restocked:")
    }
    lines = [
        {
            "sku": sku,
            "received": units,
            "restocked": restocked.get(sku, 0),
            "unsellable": units - restocked.get(sku, 0),
        }
        for sku, units in sorted(received.items())
        if not restocked_only or restocked.get(sku, 0) > 0
    ]
    return {"receipt_id": detail.get("receipt_id"), "lines": lines}
