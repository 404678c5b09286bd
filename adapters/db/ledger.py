"""Double-entry postings: balanced per currency, idempotent per (refund, step)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlmodel import col

from adapters.db.engine import Database
from adapters.db.models import LedgerLineRow, LedgerPostingRow, utcnow


class UnbalancedPosting(ValueError):
    pass


@dataclass(frozen=True)
class Line:
    account: str
    debit: int = 0
    credit: int = 0


def post(
    db: Database,
    session: Session,
    *,
    posting_key: str,
    request_id: str,
    currency: str,
    description: str,
    lines: list[Line],
) -> bool:
    """Write a posting once; returns False when it already exists (re-posting is a no-op)."""
    _check_balanced(lines)
    inserted = db.insert_ignoring_conflicts(
        session,
        LedgerPostingRow,
        [
            {
                "posting_key": posting_key,
                "request_id": request_id,
                "currency": currency,
                "description": description,
                "posted_at": utcnow(),
            }
        ],
    )
    if not inserted:
        return False
    session.add_all(
        LedgerLineRow(
            posting_key=posting_key,
            account=line.account,
            debit=line.debit,
            credit=line.credit,
            currency=currency,
        )
        for line in lines
    )
    return True


@dataclass(frozen=True)
class PostedLine:
    account: str
    debit: int
    credit: int
    currency: str


def lines_of(session: Session, posting_key: str) -> list[PostedLine]:
    rows = session.execute(
        select(LedgerLineRow)
        .where(col(LedgerLineRow.posting_key) == posting_key)
        .order_by(col(LedgerLineRow.id))
    ).scalars()
    return [PostedLine(r.account, r.debit, r.credit, r.currency) for r in rows]


def _check_balanced(lines: list[Line]) -> None:
    if not lines:
        raise UnbalancedPosting("a posting needs lines")
    for line in lines:
        if line.debit < 0 or line.credit < 0 or (line.debit > 0) == (line.credit > 0):
            raise UnbalancedPosting(f"line {line.account} must be a positive debit or credit")
    if sum(line.debit for line in lines) != sum(line.credit for line in lines):
        raise UnbalancedPosting("debits and credits differ")


def refund_lines(provider: str, merchant: str, currency: str, amount: int) -> list[Line]:
    """A refund paid out through the PSP: contra-revenue up, the PSP clearing balance down."""
    return [
        Line(account=f"{merchant}:refunds_contra_revenue:{currency}", debit=amount),
        Line(account=f"{merchant}:psp_clearing:{provider}:{currency}", credit=amount),
    ]


def balances(session: Session, request_id: str | None = None) -> dict[tuple[str, str], int]:
    """Debit-minus-credit per (account, currency), optionally for one refund."""
    query = select(
        col(LedgerLineRow.account),
        col(LedgerLineRow.currency),
        func.sum(col(LedgerLineRow.debit) - col(LedgerLineRow.credit)),
    ).group_by(col(LedgerLineRow.account), col(LedgerLineRow.currency))
    if request_id is not None:
        query = query.join(
            LedgerPostingRow, col(LedgerPostingRow.posting_key) == col(LedgerLineRow.posting_key)
        ).where(col(LedgerPostingRow.request_id) == request_id)
    return {(account, currency): int(total) for account, currency, total in session.execute(query)}
