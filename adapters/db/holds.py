"""Payment holds: refunding a disputed payment would pay the customer twice."""

from __future__ import annotations

from sqlalchemy.orm import Session

from adapters.db.engine import Database
from adapters.db.models import PaymentHoldRow, utcnow
from domain.status import Provider


def open_hold(db: Database, provider: Provider, reference: str, reason: str) -> None:
    """Hold the payment. A duplicate or late delivery of the same dispute (the same `reason`, which
    names the PSP's event) changes nothing, even once released; another dispute or chargeback after
    ops released the hold holds it again: their release decided the dispute before, not this one."""
    reason = reason[:200]
    with db.transaction() as session:
        row = session.get(PaymentHoldRow, (provider.value, reference), with_for_update=True)
        if row is None:
            session.add(PaymentHoldRow(provider=provider.value, reference=reference, reason=reason))
        elif row.released_at is not None and row.reason != reason:
            row.reason, row.opened_at = reason, utcnow()
            row.released_at, row.released_by = None, None


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
