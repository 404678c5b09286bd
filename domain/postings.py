"""The posting rules: which transfers each step of a refund books, in which currency, under which key.

A refund's reservation is a set of pending transfers (what the refund will cost, owed to the
customer); the PSP's confirmation posts them and pays the customer out of the PSP balance; a refusal
voids them; a failure after success reverses what was posted. A refund made outside the product
(the PSP's dashboard) is posted at once. Every transfer moves a positive or zero integer amount in
minor units from one account to another of the same currency, so every posting balances per
currency by construction; its key (`<key_prefix>:<leg>`) makes storing it twice a no-op.

Keys and account names are stored: histories already written depend on them never changing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from domain.accounts import AccountName, account
from domain.allocation import Allocation
from domain.fx import FxFacts, at_capture_rate, fx_difference
from domain.money import Money
from domain.status import RefundMethod, RefundStatus


class Phase(StrEnum):
    """Two-phase transfers: pending until posted or voided, once; or posted at once (single)."""

    SINGLE = "single"
    PENDING = "pending"
    POST_PENDING = "post_pending"
    VOID_PENDING = "void_pending"


POSTED_PHASES = (Phase.SINGLE.value, Phase.POST_PENDING.value)


@dataclass(frozen=True)
class Leg:
    """One transfer of a posting: `amount` debited to `debit`, credited to `credit`."""

    name: str
    debit: str
    credit: str
    amount: int


@dataclass(frozen=True)
class Posting:
    """Legs in one currency for one refund of one merchant, each stored as `<key_prefix>:<leg name>`."""

    request_id: str
    merchant: str
    currency: str
    key_prefix: str
    legs: tuple[Leg, ...]

    def transfer_key(self, leg: Leg) -> str:
        return f"{self.key_prefix}:{leg.name}"


@dataclass(frozen=True)
class Transfer:
    """A stored transfer, as read back."""

    transfer_key: str
    debit_account: str
    credit_account: str
    amount: int
    currency: str
    phase: str
    merchant: str = ""


def money_moved(status: RefundStatus, method: RefundMethod, amount: Money | None) -> bool:
    """A succeeded refund (not a void of an uncaptured payment) moved money: its pending costs are
    posted and the PSP's payout booked. Anything else (a void, a refusal, a rejection) voids them."""
    return status is RefundStatus.SUCCEEDED and method is RefundMethod.REFUND and amount is not None


def resolution(pending_key: str, *, post: bool) -> tuple[str, Phase]:
    """The key and phase of a pending transfer's resolution: posted (the PSP confirmed) or voided."""
    if post:
        return f"{pending_key}:post", Phase.POST_PENDING
    return f"{pending_key}:void", Phase.VOID_PENDING


def refund_allocation(amount: Money, allocation: Allocation | None) -> Allocation:
    """The workflow's allocation of `amount`, or (none given, or not of this amount) the whole amount
    unallocated over no lines: sales given back."""
    if allocation is not None and allocation.total == amount.value and allocation.currency == amount.currency:
        return allocation
    return Allocation(currency=amount.currency, unallocated=amount.value)


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


def reservation(
    request_id: str, merchant: str, hold: int, amount: Money, allocation: Allocation | None
) -> Posting:
    """The refund's costs, held (pending) before the PSP is asked; each hold of a request keyed apart."""
    legs = cost_legs(merchant, refund_allocation(amount, allocation))
    return Posting(request_id, merchant, amount.currency, f"{request_id}:hold{hold}", tuple(legs))


def payout_leg(merchant: str, provider: str, currency: str, amount: int) -> Leg:
    """The PSP pays the customer out of our balance there."""
    return Leg(
        "payout",
        account(merchant, AccountName.CUSTOMER_REFUNDS_PAYABLE, currency),
        account(merchant, AccountName.PSP_RECEIVABLE, currency, provider),
        amount,
    )


def payout_postings(
    request_id: str, merchant: str, provider: str, refund: Money, fx: FxFacts | None
) -> list[Posting]:
    """The PSP pays the customer, per currency. Paid from a balance in another currency, the refund
    goes through `fx_conversion` in both currencies; the settlement currency side costs what the sale
    brought in (the capture's rate), and the rest is an FX gain or loss."""

    def posting(currency: str, legs: list[Leg]) -> Posting:
        return Posting(request_id, merchant, currency, f"{request_id}:payout:{currency}", tuple(legs))

    if fx is None or fx.refund_settled.currency == refund.currency:
        return [posting(refund.currency, [payout_leg(merchant, provider, refund.currency, refund.value)])]
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
    return [posting(refund.currency, converted), posting(settled, settlement)]


def fee_returned_postings(request_id: str, merchant: str, provider: str, returned: Money) -> list[Posting]:
    """A processing fee the PSP gave back with the refund: into our balance there, out of its fees."""
    if returned.value <= 0:
        return []
    leg = Leg(
        "fee_returned",
        account(merchant, AccountName.PSP_RECEIVABLE, returned.currency, provider),
        account(merchant, AccountName.PSP_FEES, returned.currency, provider),
        returned.value,
    )
    return [
        Posting(
            request_id, merchant, returned.currency, f"{request_id}:fee_returned:{returned.currency}", (leg,)
        )
    ]


def reversal_legs(posted: Sequence[Transfer]) -> list[Leg]:
    """Every posted transfer undone: the same amount from the debit back to the credit account."""
    return [
        Leg(t.transfer_key.replace(":", "/"), t.credit_account, t.debit_account, t.amount) for t in posted
    ]


def reversal_postings(request_id: str, posted: Sequence[Transfer]) -> list[Posting]:
    """A refund that failed after it succeeded: everything posted for it undone, per currency (in
    the order of their codes), on the merchant's accounts that were posted to."""
    if not posted:
        return []
    merchant = posted[0].merchant
    return [
        Posting(
            request_id,
            merchant,
            currency,
            f"{request_id}:reversal",
            tuple(reversal_legs([t for t in posted if t.currency == currency])),
        )
        for currency in sorted({t.currency for t in posted})
    ]


def external_refund(request_id: str, merchant: str, provider: str, amount: Money) -> Posting:
    """A refund made outside the product, posted at once: its cost (sales given back, no lines named)
    and the PSP's payout of it."""
    legs = [
        *cost_legs(merchant, refund_allocation(amount, None)),
        payout_leg(merchant, provider, amount.currency, amount.value),
    ]
    return Posting(request_id, merchant, amount.currency, f"{request_id}:external", tuple(legs))
