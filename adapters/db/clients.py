"""API clients and their budget: who they are (by key digest), and what each refund reserved.

A client's reservations in one currency are serialised by its budget row: PostgreSQL locks it FOR
UPDATE, SQLite's single writer (BEGIN IMMEDIATE, `adapters/db/engine.py`) serialises them anyway.
Under that lock the window's reserved total is summed and the new reservation inserted, so
concurrent requests can never together reserve more than the budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session
from sqlmodel import col

from adapters.db.models import ApiClientBudgetRow, ApiClientRow, ClientReservationRow, utcnow
from domain.clients import BUDGET_CODE, BUDGET_WINDOW, BudgetStanding, Client, key_digest, over_budget
from domain.contracts import RiskReason
from domain.money import Money


class BudgetState(StrEnum):
    RESERVED = "reserved"
    RELEASED = "released"


@dataclass(frozen=True)
class ClientListing:
    client: Client
    created_at: datetime
    revoked_at: datetime | None


def create(session: Session, client: Client, key: str) -> bool:
    """Keep a new client, its key as a digest; False when the name is taken (revoked ones too)."""
    if session.get(ApiClientRow, client.name) is not None:
        return False
    session.add(
        ApiClientRow(
            name=client.name,
            merchant=client.merchant_id,
            key_digest=key_digest(key),
            reasons=",".join(client.reasons),
        )
    )
    session.flush()
    for budget in client.budgets:
        maximum = client.maximum(budget.currency)
        if maximum is None:  # domain.clients.parse_maxima gives every budget's currency one
            raise ValueError(f"client {client.name} has no maximum per refund in {budget.currency}")
        session.add(
            ApiClientBudgetRow(
                client=client.name,
                currency=budget.currency,
                daily_limit=budget.value,
                max_per_refund=maximum.value,
            )
        )
    return True


def revoke(session: Session, name: str) -> bool:
    """Revoke a client's key for good; False when there is no such client still active."""
    row = session.get(ApiClientRow, name)
    if row is None or row.revoked_at is not None:
        return False
    row.revoked_at = utcnow()
    return True


def listing(session: Session) -> list[ClientListing]:
    rows = session.execute(select(ApiClientRow).order_by(col(ApiClientRow.name))).scalars().all()
    return [ClientListing(_client(session, row), row.created_at, row.revoked_at) for row in rows]


def by_key(session: Session, key: str, now: datetime | None = None) -> Client | None:
    """The active client this key proves (its current key, or the previous one until it lapses);
    None for an unknown, lapsed or revoked key. The key is looked up by its sha256 digest: a key is
    32 random bytes, so the index reveals nothing worth timing."""
    digest = key_digest(key)
    row = session.execute(
        select(ApiClientRow).where(
            or_(col(ApiClientRow.key_digest) == digest, col(ApiClientRow.previous_key_digest) == digest)
        )
    ).scalar_one_or_none()
    if row is None or row.revoked_at is not None:
        return None
    if row.key_digest != digest and not _before(now or utcnow(), row.previous_key_until):
        return None
    return _client(session, row)


@dataclass(frozen=True)
class Rotation:
    """A key rotated; `cut_short` is when the key before the current one would have stopped, had
    this rotation not stopped it now (None: it had stopped already, or there was none)."""

    cut_short: datetime | None


def rotate(session: Session, name: str, key: str, old_key_until: datetime) -> Rotation | None:
    """Give an active client a new key; its current one keeps working until `old_key_until` (now:
    at once), and any key before that stops now. None when there is no such active client."""
    row = session.execute(
        select(ApiClientRow).where(col(ApiClientRow.name) == name).with_for_update()
    ).scalar_one_or_none()
    if row is None or row.revoked_at is not None:
        return None
    now = utcnow()
    cut_short = row.previous_key_until if _before(now, row.previous_key_until) else None
    row.previous_key_digest, row.previous_key_until = row.key_digest, old_key_until
    row.key_digest = key_digest(key)
    session.flush()
    return Rotation(cut_short=cut_short)


def _before(now: datetime, until: datetime | None) -> bool:
    if until is None:
        return False
    if until.tzinfo is None:  # SQLite keeps no zone; every stamp is UTC
        until = until.replace(tzinfo=UTC)
    return now < until


def _client(session: Session, row: ApiClientRow) -> Client:
    budgets = (
        session.execute(
            select(ApiClientBudgetRow)
            .where(col(ApiClientBudgetRow.client) == row.name)
            .order_by(col(ApiClientBudgetRow.currency))
        )
        .scalars()
        .all()
    )
    return Client(
        name=row.name,
        merchant_id=row.merchant,
        reasons=tuple(row.reasons.split(",")),
        maxima=tuple(Money(value=b.max_per_refund, currency=b.currency) for b in budgets),
        budgets=tuple(Money(value=b.daily_limit, currency=b.currency) for b in budgets),
    )


@dataclass(frozen=True)
class Reserved:
    """What intake decided: `held` says why a human decides it (nothing reserved then); `fresh` is
    True when this call reserved it, False when it was already (only the refund's outcome gives it
    back)."""

    held: RiskReason | None
    fresh: bool = False


def reserve(session: Session, client: Client, request_id: str, amount: Money, now: datetime) -> Reserved:
    """Reserve `amount` of the client's budget for this refund, or say why it does not fit."""
    budget = session.execute(
        select(ApiClientBudgetRow)
        .where(
            col(ApiClientBudgetRow.client) == client.name,
            col(ApiClientBudgetRow.currency) == amount.currency,
        )
        .with_for_update()
    ).scalar_one_or_none()
    if budget is None:
        return Reserved(held=over_budget(client, amount, 0))
    # read under the lock: the same request sent twice at once reserves once
    existing = session.get(ClientReservationRow, request_id)
    if existing is not None and existing.state == BudgetState.RESERVED:
        if (existing.client, existing.amount, existing.currency) == (
            client.name,
            amount.value,
            amount.currency,
        ):
            return Reserved(held=None)
        # the same id with another amount (a twin racing the first to start): what was reserved
        # does not cover it, so a human decides it (the loser of the race gets its 409)
        return Reserved(
            held=RiskReason(
                code=BUDGET_CODE,
                points=0,
                detail=f"request {request_id} reserved another amount of {client.name}'s budget",
            )
        )
    if existing is not None:
        # released: only the refund's outcome releases (activities/ledger.py), so this is a resend of
        # a refund that is over, whose start finds its workflow; budget taken now would never come back
        return Reserved(
            held=RiskReason(
                code=BUDGET_CODE,
                points=0,
                detail=f"request {request_id} is over and gave its budget back",
            )
        )
    spent = reserved_total(session, client.name, amount.currency, now - BUDGET_WINDOW)
    held = over_budget(client, amount, spent)
    if held is not None:
        return Reserved(held=held)
    session.add(
        ClientReservationRow(
            request_id=request_id,
            client=client.name,
            currency=amount.currency,
            amount=amount.value,
            state=BudgetState.RESERVED,
            reserved_at=now,
        )
    )
    session.flush()
    return Reserved(held=None, fresh=True)


def release(session: Session, request_id: str) -> bool:
    """Give a refund's reservation back (once: False when it holds none)."""
    released = session.execute(
        update(ClientReservationRow)
        .where(
            col(ClientReservationRow.request_id) == request_id,
            col(ClientReservationRow.state) == BudgetState.RESERVED.value,
        )
        .values(state=BudgetState.RELEASED.value, released_at=utcnow())
    )
    return bool(released.rowcount)  # type: ignore[attr-defined]


def reserved_total(session: Session, client: str, currency: str, since: datetime) -> int:
    """What a client holds reserved in `currency` after `since` (minor units)."""
    total = session.execute(
        select(func.coalesce(func.sum(ClientReservationRow.amount), 0)).where(
            col(ClientReservationRow.client) == client,
            col(ClientReservationRow.currency) == currency,
            col(ClientReservationRow.state) == BudgetState.RESERVED.value,
            col(ClientReservationRow.reserved_at) > since,
        )
    ).scalar_one()
    return int(total)


def standing(session: Session, client: Client, now: datetime) -> list[BudgetStanding]:
    """Each of the client's daily budgets as it stands at `now`, by currency."""
    since = now - BUDGET_WINDOW
    return [
        BudgetStanding(budget, reserved_total(session, client.name, budget.currency, since))
        for budget in client.budgets
    ]
