"""PSP events already signalled: the durable memory that keeps a replayed notification (Adyen signs no
timestamp) from reaching a refund's workflow again and growing its history without bound.

Two deliveries of one event at once (a PSP retrying a slow answer, a storm of replays) must not both
signal: each first takes the event (`take`), a claim row beside the event's own; only the one that
took it signals, then `remember`s it. A claim left by a process killed before it signalled goes
stale and the next delivery takes the event again, so a crash never loses it.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import Delete, delete, update
from sqlalchemy.orm import Session
from sqlmodel import col

from adapters.db.dialect import insert_ignoring_conflicts
from adapters.db.models import PspEventRow, utcnow
from domain.status import Provider

CLAIM_STALE_AFTER = timedelta(seconds=60)  # far beyond a signal's time; a killed process's claim ends
_CLAIM = "taking:"


class Take(StrEnum):
    TAKEN = "taken"  # this delivery signals it
    DONE = "done"  # signalled before: a replay
    BUSY = "busy"  # another delivery is signalling it now: the PSP should deliver again later


_KEY_LIMIT = 200


def _key(event_id: str) -> str:
    """The PSP's event identity, hashed only when longer than the column."""
    if len(event_id) <= _KEY_LIMIT:
        return event_id
    return "sha256:" + hashlib.sha256(event_id.encode()).hexdigest()


def seen(session: Session, provider: Provider, account: str, event_id: str) -> bool:
    return session.get(PspEventRow, (provider.value, account, _key(event_id))) is not None


def take(
    session: Session, provider: Provider, account: str, event_id: str, now: datetime | None = None
) -> Take:
    """Claim the event for this delivery, unless it was signalled or another delivery holds it."""
    if seen(session, provider, account, event_id):
        return Take.DONE
    now = now or utcnow()
    claim = {
        "provider": provider.value,
        "account": account,
        "event_key": _claim_key(event_id),
        "received_at": now,
    }
    if insert_ignoring_conflicts(session, PspEventRow, [claim]):
        # the delivery that held the claim may have remembered the event (and let its claim go)
        # since the first look: looked at again, after the claim is ours
        if seen(session, provider, account, event_id):
            session.execute(_claim_of(provider, account, event_id))
            return Take.DONE
        return Take.TAKEN
    stale = session.execute(
        update(PspEventRow)
        .where(
            col(PspEventRow.provider) == provider.value,
            col(PspEventRow.account) == account,
            col(PspEventRow.event_key) == _claim_key(event_id),
            col(PspEventRow.received_at) < now - CLAIM_STALE_AFTER,
        )
        .values(received_at=now)
    )
    return Take.TAKEN if stale.rowcount else Take.BUSY  # type: ignore[attr-defined]


def release(session: Session, provider: Provider, account: str, event_id: str) -> None:
    """This delivery could not signal it: the next delivery takes it."""
    session.execute(_claim_of(provider, account, event_id))


def remember(session: Session, provider: Provider, account: str, event_id: str) -> None:
    """Record the event as signalled (its claim done with); twice is harmless."""
    row = {"provider": provider.value, "account": account, "event_key": _key(event_id)}
    insert_ignoring_conflicts(session, PspEventRow, [row])
    session.execute(_claim_of(provider, account, event_id))


def _claim_key(event_id: str) -> str:
    return _key(_CLAIM + event_id)


def _claim_of(provider: Provider, account: str, event_id: str) -> Delete:
    return delete(PspEventRow).where(
        col(PspEventRow.provider) == provider.value,
        col(PspEventRow.account) == account,
        col(PspEventRow.event_key) == _claim_key(event_id),
    )
