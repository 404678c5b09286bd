"""A merchant's event endpoints: where its refunds' events go, which types, and the secret each is
signed with (Standard Webhooks' `whsec_` form, shown once when made or rotated)."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session
from sqlmodel import col

from adapters.db.models import EventDeliveryRow, EventEndpointRow, utcnow
from domain.outbound_events import EventType

SECRET_PREFIX = "whsec_"


@dataclass(frozen=True)
class Endpoint:
    endpoint_id: str
    merchant: str | None  # None: the installation's default merchant
    url: str
    event_types: tuple[EventType, ...]
    enabled: bool
    disabled_reason: str | None
    created_at: datetime

    def hears(self, event_type: EventType) -> bool:
        return event_type in self.event_types


@dataclass(frozen=True)
class SigningSecrets:
    """The secrets a delivery is signed with now: the current one, and a rotated one in its grace."""

    current: str
    previous: str | None


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def create(
    session: Session, merchant: str | None, url: str, types: tuple[EventType, ...]
) -> tuple[Endpoint, str]:
    """A new endpoint and its secret (shown to the caller once)."""
    secret = new_secret()
    row = EventEndpointRow(
        endpoint_id=f"ep_{secrets.token_hex(8)}",
        merchant=merchant,
        url=url,
        event_types=",".join(t.value for t in types),
        secret=secret,
    )
    session.add(row)
    session.flush()
    return _endpoint(row), secret


def get(session: Session, endpoint_id: str) -> Endpoint | None:
    row = session.get(EventEndpointRow, endpoint_id)
    return _endpoint(row) if row is not None else None


def listing(session: Session, merchant: str | None = None, *, every_merchant: bool = True) -> list[Endpoint]:
    query = select(EventEndpointRow).order_by(
        col(EventEndpointRow.created_at), col(EventEndpointRow.endpoint_id)
    )
    if not every_merchant:
        query = query.where(_of(merchant))
    return [_endpoint(row) for row in session.execute(query).scalars().all()]


def subscribed(session: Session, merchant: str | None) -> list[Endpoint]:
    """Every endpoint of the merchant's (disabled ones too: what they miss waits for them)."""
    rows = session.execute(select(EventEndpointRow).where(_of(merchant))).scalars().all()
    return [_endpoint(row) for row in rows]


def signing_secrets(session: Session, endpoint_id: str, now: datetime) -> SigningSecrets | None:
    row = session.get(EventEndpointRow, endpoint_id)
    if row is None:
        return None
    lapsed = row.previous_secret_until is None or _utc(row.previous_secret_until) <= now
    return SigningSecrets(row.secret, None if lapsed else row.previous_secret)


class StillInGrace(Exception):
    """A rotation while the previous secret still signs: it would stop at once."""

    def __init__(self, until: datetime) -> None:
        super().__init__(f"the previous secret signs until {until:%Y-%m-%d %H:%M} UTC")
        self.until = until


def rotate(
    session: Session,
    endpoint_id: str,
    grace: timedelta,
    now: datetime | None = None,
    *,
    drop_previous: bool = False,
) -> str | None:
    """A new secret; the old one still signs (beside it) for `grace`. None: no such endpoint.
    StillInGrace while an earlier rotation's secret still signs (a receiver may not have the
    current one yet), unless `drop_previous` ends that one now."""
    row = session.get(EventEndpointRow, endpoint_id)
    if row is None:
        return None
    at = now or utcnow()
    if row.previous_secret_until is not None and _utc(row.previous_secret_until) > at and not drop_previous:
        raise StillInGrace(_utc(row.previous_secret_until))
    row.previous_secret, row.previous_secret_until = row.secret, at + grace
    row.secret = new_secret()
    return row.secret


def disable(session: Session, endpoint_id: str, reason: str) -> bool:
    row = session.get(EventEndpointRow, endpoint_id)
    if row is None:
        return False
    row.enabled, row.disabled_reason = False, reason[:500]
    return True


def enable(session: Session, endpoint_id: str, now: datetime | None = None) -> bool:
    """Enable it again: what it is owed is due now, its failures forgotten (a new three days)."""
    row = session.get(EventEndpointRow, endpoint_id)
    if row is None:
        return False
    row.enabled, row.disabled_reason = True, None
    session.execute(
        update(EventDeliveryRow)
        .where(col(EventDeliveryRow.endpoint_id) == endpoint_id, col(EventDeliveryRow.state) == "pending")
        .values(next_attempt_at=now or utcnow(), first_failure_at=None)
    )
    return True


DECLARED_PREFIX = "epf_"  # an endpoint the merchants file declares: kept as the file says at each start


def declared_id(merchant: str, url: str) -> str:
    return DECLARED_PREFIX + hashlib.sha256(f"{merchant}\0{url}".encode()).hexdigest()[:16]


def keep_declared(
    session: Session,
    merchant: str,
    declared: list[tuple[str, tuple[EventType, ...], str]],
    grace: timedelta,
    now: datetime | None = None,
) -> list[str]:
    """Make the merchant's declared endpoints (url, types, secret) what the file says: new ones
    added, types updated, a changed secret rotated (the old one signing beside it for `grace`), and
    one the file no longer declares disabled (what it is owed is kept). What changed, in words."""
    at = now or utcnow()
    changes = []
    wanted = {declared_id(merchant, url): (url, types, secret) for url, types, secret in declared}
    for endpoint_id, (url, types, secret) in wanted.items():
        row = session.get(EventEndpointRow, endpoint_id)
        names = ",".join(t.value for t in types)
        if row is None:
            session.add(
                EventEndpointRow(
                    endpoint_id=endpoint_id, merchant=merchant, url=url, event_types=names, secret=secret
                )
            )
            changes.append(f"{endpoint_id} added for {merchant}: {url}")
            continue
        if row.event_types != names:
            row.event_types = names
            changes.append(f"{endpoint_id} now hears {names}")
        if row.secret != secret:
            row.previous_secret, row.previous_secret_until, row.secret = row.secret, at + grace, secret
            changes.append(f"{endpoint_id} signs with its new secret (the old one beside it for {grace})")
        if not row.enabled and row.disabled_reason == REMOVED_FROM_FILE:
            row.enabled, row.disabled_reason = True, None
            changes.append(f"{endpoint_id} declared again: enabled")
    gone = session.execute(
        select(EventEndpointRow).where(
            col(EventEndpointRow.merchant) == merchant,
            col(EventEndpointRow.endpoint_id).startswith(DECLARED_PREFIX),
            col(EventEndpointRow.enabled).is_(True),
        )
    ).scalars()
    for row in gone:
        if row.endpoint_id not in wanted:
            row.enabled, row.disabled_reason = False, REMOVED_FROM_FILE
            changes.append(f"{row.endpoint_id} no longer declared: disabled, its events kept")
    return changes


REMOVED_FROM_FILE = "no longer declared in the merchants file"


def _of(merchant: str | None) -> ColumnElement[bool]:
    column = col(EventEndpointRow.merchant)
    return column.is_(None) if merchant is None else column == merchant


def _utc(at: datetime) -> datetime:
    """SQLite hands back UTC times without their zone."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def _endpoint(row: EventEndpointRow) -> Endpoint:
    return Endpoint(
        endpoint_id=row.endpoint_id,
        merchant=row.merchant,
        url=row.url,
        event_types=tuple(EventType(name) for name in row.event_types.split(",") if name),
        enabled=row.enabled,
        disabled_reason=row.disabled_reason,
        created_at=_utc(row.created_at),
    )
