"""The double-entry ledger: two-phase transfers, balanced by construction, idempotent by key.

A refund's reservation is a set of pending transfers (what the refund will cost, owed to the
customer); the PSP's confirmation posts them and pays the customer out of the PSP balance; a refusal
voids them; a failure after success reverses what was posted. Accounts are per merchant and currency:
`<merchant>:<account>[:<provider>]:<currency>`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased
from sqlmodel import col

from adapters.db.dialect import insert_new
from adapters.db.models import LedgerOutboxRow, LedgerTransferRow, utcnow
from domain.allocation import Allocation
from domain.fx import FxFacts, at_capture_rate, fx_difference
from domain.money import Money


class AccountName(StrEnum):
    REFUND_CONTRA_REVENUE = "refund_contra_revenue"  # goods given back
    SALES_TAX_PAYABLE = "sales_tax_payable"  # tax refunded lowers what is owed to the tax office
    SHIPPING_CONTRA_REVENUE = "shipping_contra_revenue"
    REFUND_EXPENSE = "refund_expense"  # goodwill: more than the lines, tax and shipping were worth
    CUSTOMER_REFUNDS_PAYABLE = "customer_refunds_payable"  # owed to the customer until the PSP pays
    PSP_RECEIVABLE = "psp_receivable"  # our balance at a PSP, which pays the refund
    PSP_FEES = "psp_fees"
    FX_CONVERSION = "fx_conversion"  # where one currency turns into another, per currency
    FX_DIFFERENCE = "fx_difference"  # gains and losses against the capture's rate


class Phase(StrEnum):
    SINGLE = "single"
    PENDING = "pending"
    POST_PENDING = "post_pending"
    VOID_PENDING = "void_pending"


POSTED_PHASES = (Phase.SINGLE.value, Phase.POST_PENDING.value)


def account(merchant: str, name: AccountName, currency: str, provider: str | None = None) -> str:
    return ":".join([merchant, name.value, *([provider] if provider else []), currency])


@dataclass(frozen=True)
class Leg:
    """One transfer of a posting: `amount` debited to `debit`, credited to `credit`."""

    name: str
    debit: str
    credit: str
    amount: int


def cost_legs(merchant: str, allocation: Allocation) -> list[Leg]:
    """What a refund costs, by kind, against what is owed to the customer (zero parts omitted).

    An amount beyond the named lines is goodwill; a refund naming no lines gives back sales."""
    currency = allocation.currency
    payable = account(merchant, AccountName.CUSTOMER_REFUNDS_PAYABLE, currency)
    itemised = bool(allocation.lines)
    parts = [
        (
            "goods",
            AccountName.REFUND_CONTRA_REVENUE,
            allocation.goods + (0 if itemised else allocation.unallocated),
        ),
        ("tax", AccountName.SALES_TAX_PAYABLE, allocation.tax),
        ("shipping", AccountName.SHIPPING_CONTRA_REVENUE, allocation.shipping),
        ("goodwill", AccountName.REFUND_EXPENSE, allocation.unallocated if itemised else 0),
    ]
    return [
        Leg(name, account(merchant, name_of_account, currency), payable, amount)
        for name, name_of_account, amount in parts
        if amount > 0
    ]


def payout_leg(merchant: str, provider: str, currency: str, amount: int) -> Leg:
    """The PSP pays the customer out of our balance there."""
    return Leg(
        "payout",
        account(merchant, AccountName.CUSTOMER_REFUNDS_PAYABLE, currency),
        account(merchant, AccountName.PSP_RECEIVABLE, currency, provider),
        amount,
    )


def payout_postings(
    merchant: str, provider: str, refund: Money, fx: FxFacts | None
) -> list[tuple[str, list[Leg]]]:
    """The PSP pays the customer, per currency. Paid from a balance in another currency, the refund
    goes through `fx_conversion` in both currencies; the settlement currency side costs what the sale
    brought in (the capture's rate), and the rest is an FX gain or loss."""
    if fx is None or fx.refund_settled.currency == refund.currency:
        return [(refund.currency, [payout_leg(merchant, provider, refund.currency, refund.value)])]
    settled = fx.refund_settled.currency
    receivable = account(merchant, AccountName.PSP_RECEIVABLE, settled, provider)
    conversion = account(merchant, AccountName.FX_CONVERSION, settled)
    difference = account(merchant, AccountName.FX_DIFFERENCE, settled)
    expected, delta = at_capture_rate(refund, fx), fx_difference(refund, fx)
    converted = [
        Leg(
            "payout",
            account(merchant, AccountName.CUSTOMER_REFUNDS_PAYABLE, refund.currency),
            account(merchant, AccountName.FX_CONVERSION, refund.currency),
            refund.value,
        )
    ]
    settlement = [Leg("payout", conversion, receivable, expected)] if expected > 0 else []
    if delta > 0:
        settlement.append(Leg("fx_loss", difference, receivable, delta))
    elif delta < 0:
        settlement.append(Leg("fx_gain", receivable, difference, -delta))
    return [(refund.currency, converted), (settled, settlement)]


def _rows(
    key_prefix: str, request_id: str, merchant: str, currency: str, legs: list[Leg], phase: Phase, why: str
) -> list[dict[str, object]]:
    return [
        {
            "transfer_key": f"{key_prefix}:{leg.name}",
            "request_id": request_id,
            "merchant": merchant,
            "currency": currency,
            "debit_account": leg.debit,
            "credit_account": leg.credit,
            "amount": leg.amount,
            "phase": phase.value,
            "pending_id": None,
            "description": why[:200],
            "created_at": utcnow(),
        }
        for leg in legs
    ]


def _to_outbox(session: Session, transfer_ids: list[int]) -> None:
    insert_new(session, LedgerOutboxRow, [{"transfer_id": tid} for tid in transfer_ids])


def hold(
    session: Session,
    *,
    key_prefix: str,
    request_id: str,
    merchant: str,
    currency: str,
    legs: list[Leg],
    description: str,
) -> int:
    """Pending transfers (a reservation); re-holding under the same key prefix is a no-op."""
    rows = _rows(key_prefix, request_id, merchant, currency, legs, Phase.PENDING, description)
    return len(insert_new(session, LedgerTransferRow, rows))


def post(
    session: Session,
    *,
    key_prefix: str,
    request_id: str,
    merchant: str,
    currency: str,
    legs: list[Leg],
    description: str,
) -> bool:
    """Posted transfers at once, queued for export; False when already posted under this key."""
    rows = _rows(key_prefix, request_id, merchant, currency, legs, Phase.SINGLE, description)
    inserted = insert_new(session, LedgerTransferRow, rows)
    _to_outbox(session, inserted)
    return bool(inserted)


def _unresolved(session: Session, request_id: str) -> list[LedgerTransferRow]:
    resolution = aliased(LedgerTransferRow)
    query = (
        select(LedgerTransferRow)
        .outerjoin(resolution, col(resolution.pending_id) == col(LedgerTransferRow.id))
        .where(
            col(LedgerTransferRow.request_id) == request_id,
            col(LedgerTransferRow.phase) == Phase.PENDING.value,
            col(resolution.id).is_(None),
        )
        .order_by(col(LedgerTransferRow.id))
    )
    return list(session.execute(query).scalars())


def resolve(session: Session, request_id: str, *, post: bool, description: str) -> int:
    """Post (the PSP confirmed) or void (it refused) the refund's pending transfers, once each."""
    phase, suffix = (Phase.POST_PENDING, "post") if post else (Phase.VOID_PENDING, "void")
    rows = [
        {
            "transfer_key": f"{pending.transfer_key}:{suffix}",
            "request_id": request_id,
            "merchant": pending.merchant,
            "currency": pending.currency,
            "debit_account": pending.debit_account,
            "credit_account": pending.credit_account,
            "amount": pending.amount,
            "phase": phase.value,
            "pending_id": pending.id,
            "description": description[:200],
            "created_at": utcnow(),
        }
        for pending in _unresolved(session, request_id)
    ]
    inserted = insert_new(session, LedgerTransferRow, rows)
    if post:
        _to_outbox(session, inserted)
    return len(inserted)


@dataclass(frozen=True)
class Transfer:
    transfer_key: str
    debit_account: str
    credit_account: str
    amount: int
    currency: str
    phase: str
    merchant: str = ""


def transfers(session: Session, request_id: str, *, posted_only: bool = False) -> list[Transfer]:
    query = select(LedgerTransferRow).where(col(LedgerTransferRow.request_id) == request_id)
    if posted_only:
        query = query.where(col(LedgerTransferRow.phase).in_(POSTED_PHASES))
    rows = session.execute(query.order_by(col(LedgerTransferRow.id))).scalars()
    return [
        Transfer(r.transfer_key, r.debit_account, r.credit_account, r.amount, r.currency, r.phase, r.merchant)
        for r in rows
    ]


def reversal_legs(posted: list[Transfer]) -> list[Leg]:
    """Every posted transfer undone: the same amount from the debit back to the credit account."""
    return [
        Leg(t.transfer_key.replace(":", "/"), t.credit_account, t.debit_account, t.amount) for t in posted
    ]


def balances(
    session: Session, request_id: str | None = None, *, pending: bool = False
) -> dict[tuple[str, str], int]:
    """Debit-minus-credit per (account, currency) of what is posted (or, with `pending`, of pending
    transfers not yet resolved), optionally for one refund; accounts at zero are left out."""
    if pending:
        resolution = aliased(LedgerTransferRow)
        base = (
            select(LedgerTransferRow)
            .outerjoin(resolution, col(resolution.pending_id) == col(LedgerTransferRow.id))
            .where(col(LedgerTransferRow.phase) == Phase.PENDING.value, col(resolution.id).is_(None))
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
