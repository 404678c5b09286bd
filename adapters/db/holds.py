"""Payment holds: refunding a disputed payment would pay the customer twice."""

from __future__ import annotations

from sqlalchemy.orm import Session

from adapters.db.engine import Database
from adapters.db.models import PaymentHoldRow, utcnow
from domain.status import Provider


def open_hold(db: Database, provider: Provider, reference: str, reason: str) -> None:
    """Hold the payment; a duplicate or late delivery of the same dispute changes nothing."""
    with db.transaction() as session:
        row = session.get(PaymentHoldRow, (provider.value, reference), with_for_update=True)
        if row is None:
            session.add(PaymentHoldRow(provider=provider.value, reference=reference, reason=reason))


def release_hold(db: Database, provider: Provider, reference: str, operator: str) -> bool:
    with db.transaction() as session:
        row = session.get(PaymentHoldRow, (provider.value, reference), with_for_update=True)
        if row is None or row.released_at is not None:
            return False
        row.released_at = utcnow()
        row.released_by = operator
        return True


def held(session: Session, provider: Provider, reference: str) -> str | None:
    """The open hold's reason, or None."""
    row = session.get(PaymentHoldRow, (provider.value, reference))
    return row.reason if row is not None and row.released_at is None else None
