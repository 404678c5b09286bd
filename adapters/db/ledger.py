"""The ledger's storage: two-phase transfers, stored once by key, and the balances they add up to.

What a refund posts (accounts, legs, keys, currencies) is decided in `domain/postings.py` and
`domain/accounts.py`; this module only stores postings, resolves pending transfers and reads back.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased
from sqlmodel import col

from adapters.db.dialect import insert_new
from adapters.db.models import LedgerOutboxRow, LedgerTransferRow, utcnow
from domain.postings import POSTED_PHASES, Phase, Posting, Transfer, resolution


def _rows(posting: Posting, phase: Phase, why: str) -> list[dict[str, object]]:
    return [
        {
            "transfer_key": posting.transfer_key(leg),
            "request_id": posting.request_id,
            "merchant": posting.merchant,
            "currency": posting.currency,
            "debit_account": leg.debit,
            "credit_account": leg.credit,
            "amount": leg.amount,
            "phase": phase.value,
            "pending_id": None,
            "description": why[:200],
            "created_at": utcnow(),
        }
        for leg in posting.legs
    ]


def _to_outbox(session: Session, transfer_ids: list[int]) -> None:
    insert_new(session, LedgerOutboxRow, [{"transfer_id": tid} for tid in transfer_ids])


def hold(session: Session, posting: Posting, *, description: str) -> int:
    """Pending transfers (a reservation); re-holding under the same key prefix is a no-op."""
    return len(insert_new(session, LedgerTransferRow, _rows(posting, Phase.PENDING, description)))


def post(session: Session, posting: Posting, *, description: str) -> bool:
    """Posted transfers at once, queued for export; False when already posted under this key."""
    inserted = insert_new(session, LedgerTransferRow, _rows(posting, Phase.SINGLE, description))
    _to_outbox(session, inserted)
    return bool(inserted)


def _unresolved(session: Session, request_id: str) -> list[LedgerTransferRow]:
    resolved = aliased(LedgerTransferRow)
    query = (
        select(LedgerTransferRow)
        .outerjoin(resolved, col(resolved.pending_id) == col(LedgerTransferRow.id))
        .where(
            col(LedgerTransferRow.request_id) == request_id,
            col(LedgerTransferRow.phase) == Phase.PENDING.value,
            col(resolved.id).is_(None),
        )
        .order_by(col(LedgerTransferRow.id))
    )
    return list(session.execute(query).scalars())


def _resolution_row(pending: LedgerTransferRow, *, post: bool, why: str) -> dict[str, object]:
    key, phase = resolution(pending.transfer_key, post=post)
    return {
        "transfer_key": key,
        "request_id": pending.request_id,
        "merchant": pending.merchant,
        "currency": pending.currency,
        "debit_account": pending.debit_account,
        "credit_account": pending.credit_account,
        "amount": pending.amount,
        "phase": phase.value,
        "pending_id": pending.id,
        "description": why[:200],
        "created_at": utcnow(),
    }


def resolve(session: Session, request_id: str, *, post: bool, description: str) -> int:
    """Post (the PSP confirmed) or void (it refused) the refund's pending transfers, once each."""
    rows = [
        _resolution_row(pending, post=post, why=description) for pending in _unresolved(session, request_id)
    ]
    inserted = insert_new(session, LedgerTransferRow, rows)
    if post:
        _to_outbox(session, inserted)
    return len(inserted)


def transfers(session: Session, request_id: str, *, posted_only: bool = False) -> list[Transfer]:
    query = select(LedgerTransferRow).where(col(LedgerTransferRow.request_id) == request_id)
    if posted_only:
        query = query.where(col(LedgerTransferRow.phase).in_(POSTED_PHASES))
    rows = session.execute(query.order_by(col(LedgerTransferRow.id))).scalars()
    return [
        Transfer(r.transfer_key, r.debit_account, r.credit_account, r.amount, r.currency, r.phase, r.merchant)
        for r in rows
    ]


def balances(
    session: Session, request_id: str | None = None, *, pending: bool = False
) -> dict[tuple[str, str], int]:
    """Debit-minus-credit per (account, currency) of what is posted (or, with `pending`, of pending
    transfers not yet resolved), optionally for one refund; accounts at zero are left out."""
    if pending:
        resolved = aliased(LedgerTransferRow)
        base = (
            select(LedgerTransferRow)
            .outerjoin(resolved, col(resolved.pending_id) == col(LedgerTransferRow.id))
            .where(col(LedgerTransferRow.phase) == Phase.PENDING.value, col(resolved.id).is_(None))
        )
    else:
        base = select(LedgerTransferRow).where(col(LedgerTransferRow.phase).in_(POSTED_PHASES))
    if request_id is not None:
        base = base.where(col(LedgerTransferRow.request_id) == request_id)
    rows = base.subquery()
    sides = (
        select(rows.c.debit_account.label("account"), rows.c.currency, rows.c.amount.label("signed"))
        .union_all(select(rows.c.credit_account, rows.c.currency, -rows.c.amount))
        .subquery()
    )
    query = select(sides.c.account, sides.c.currency, func.sum(sides.c.signed)).group_by(
        sides.c.account, sides.c.currency
    )
    return {
        (account_name, currency): int(total)
        for account_name, currency, total in session.execute(query)
        if int(total) != 0
    }
