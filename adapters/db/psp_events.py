"""PSP events already signalled: the durable memory that keeps a replayed notification (Adyen signs no
timestamp) from reaching a refund's workflow again and growing its history without bound."""

from __future__ import annotations

import hashlib

from sqlalchemy.orm import Session

from adapters.db.dialect import insert_ignoring_conflicts
from adapters.db.models import PspEventRow
from domain.status import Provider

_KEY_LIMIT = 200


def _key(event_id: str) -> str:
    """The PSP's event identity, hashed only when longer than the column."""
    if len(event_id) <= _KEY_LIMIT:
        return event_id
    return "sha256:" + hashlib.sha256(event_id.encode()).hexdigest()


def seen(session: Session, provider: Provider, account: str, event_id: str) -> bool:
    return session.get(PspEventRow, (provider.value, account, _key(event_id))) is not None


def remember(session: Session, provider: Provider, account: str, event_id: str) -> None:
    """Record the event as signalled; remembering it twice (two deliveries at once) is harmless."""
    row = {"provider": provider.value, "account": account, "event_key": _key(event_id)}
    insert_ignoring_conflicts(session, PspEventRow, [row])
