"""The chart of accounts and the posting rules, as pure functions: what each step of a refund books.

Every posting balances in its currency, moves integer amounts, and keys its transfers apart; a
refund's whole life (reserved, posted, paid out, perhaps reversed) leaves nothing owed to the
customer, and the keys and accounts stay the ones already stored."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.accounts import AccountName, account, paid_out
from domain.allocation import AllocatedLine, Allocation
from domain.fx import FxFacts, at_capture_rate
from domain.money import Money
from domain.postings import (
    POSTED_PHASES,
    Leg,
    Phase,
    Posting,
    Transfer,
    cost_legs,
    external_refund,
    money_moved,
    payout_postings,
    refund_allocation,
    reservation,
    resolution,
    reversal_postings,
)
from domain.status import RefundMethod, RefundStatus

CURRENCIES = ["EUR", "USD", "JPY", "KWD"]
MERCHANTS = ["m1", "acme", "globex"]
PROVIDERS = ["stripe", "adyen", "paypal"]

Balances = dict[tuple[str, str], int]


def net(postings: Iterable[Posting]) -> Balances:
    """Debit minus credit per (account, currency), zeros left out: what `ledger.balances` reads."""
    totals: Balances = {}
    for posting in postings:
        for leg in posting.legs:
            for name, signed in ((leg.debit, leg.amount), (leg.credit, -leg.amount)):
                key = (name, posting.currency)
                totals[key] = totals.get(key, 0) + signed
    return {key: value for key, value in totals.items() if value != 0}


def per_currency(balances: Balances) -> dict[str, int]:
    sums: dict[str, int] = {}
    for (_, currency), value in balances.items():
        sums[currency] = sums.get(currency, 0) + value
    return sums


def posted(held: Posting, payouts: Iterable[Posting]) -> list[Transfer]:
    """A confirmed refund's posted transfers as the database reads them back: its held costs posted
    under their resolution's key, then its payouts."""

    def read(key: str, leg: Leg, posting: Posting, phase: Phase) -> Transfer:
        return Transfer(
            key, leg.debit, leg.credit, leg.amount, posting.currency, phase.value, posting.merchant
        )

    costs = [
        read(resolution(held.transfer_key(leg), post=True)[0], leg, held, Phase.POST_PENDING)
        for leg in held.legs
    ]
    paid = [read(p.transfer_key(leg), leg, p, Phase.SINGLE) for p in payouts for leg in p.legs]
    return costs + paid


def assert_well_formed(posting: Posting) -> None:
    for leg in posting.legs:
        assert type(leg.amount) is int and leg.amount >= 0
        assert leg.debit != leg.credit
        # every account of a posting is in its currency: it balances per currency by construction
        for name in (leg.debit, leg.credit):
            assert name.startswith(f"{posting.merchant}:") and name.endswith(f":{posting.currency}")
    keys = [posting.transfer_key(leg) for leg in posting.legs]
    assert len(set(keys)) == len(keys)
    assert all(key.startswith(f"{posting.request_id}:") for key in keys)


@st.composite
def allocations(draw: st.DrawFn, currency: str | None = None) -> Allocation:
    lines = draw(
        st.lists(
            st.builds(
                AllocatedLine,
                sku=st.sampled_from(["A", "B", "C"]),
                quantity=st.integers(min_value=1, max_value=5),
                goods=st.integers(min_value=0, max_value=10**9),
                tax=st.integers(min_value=0, max_value=10**8),
            ),
            max_size=4,
        )
    )
    return Allocation(
        currency=currency or draw(st.sampled_from(CURRENCIES)),
        lines=lines,
        shipping=draw(st.integers(min_value=0, max_value=10**6)),
        unallocated=draw(st.integers(min_value=0, max_value=10**7)),
    )


# the chart of accounts -------------------------------------------------------------------------


def test_account_names_are_the_stored_ones() -> None:
    assert account("m1", AccountName.CUSTOMER_REFUNDS_PAYABLE, "EUR") == "m1:customer_refunds_payable:EUR"
    assert account("m1", AccountName.PSP_RECEIVABLE, "EUR", "stripe") == "m1:psp_receivable:stripe:EUR"
    assert [name.value for name in AccountName] == [
        "refund_contra_revenue",
        "sales_tax_payable",
        "shipping_contra_revenue",
        "refund_expense",
        "customer_refunds_payable",
        "psp_receivable",
        "fx_conversion",
        "fx_difference",
        "psp_fees",  # added: a name once stored is never renamed
    ]


def test_paid_out_counts_the_psp_balance_in_the_refunds_currency_or_its_conversion() -> None:
    balances = {
        ("m1:refund_contra_revenue:USD", "USD"): 5_000,
        ("m1:fx_conversion:USD", "USD"): -5_000,
        ("m1:fx_conversion:EUR", "EUR"): 4_500,
        ("m1:psp_receivable:stripe:EUR", "EUR"): -4_500,
    }
    assert paid_out(balances, "stripe", "USD") == 5_000
    assert paid_out({("m1:psp_receivable:stripe:EUR", "EUR"): -700}, "stripe", "EUR") == 700
    assert paid_out({("m1:psp_receivable:adyen:EUR", "EUR"): -700}, "stripe", "EUR") == 0


# the rules, on the examples the books already hold ------------------------------------------------


def test_a_reservation_books_each_kind_of_cost_against_what_is_owed_to_the_customer() -> None:
    line = AllocatedLine(sku="A", quantity=1, goods=1_000, tax=190)
    allocation = Allocation(currency="EUR", lines=[line], shipping=490, unallocated=20)
    held = reservation("r1", "m1", 2, Money(value=1_700, currency="EUR"), allocation)
    payable = "m1:customer_refunds_payable:EUR"
    assert held == Posting(
        "r1",
        "m1",
        "EUR",
        "r1:hold2",
        (
            Leg("goods", "m1:refund_contra_revenue:EUR", payable, 1_000),
            Leg("tax", "m1:sales_tax_payable:EUR", payable, 190),
            Leg("shipping", "m1:shipping_contra_revenue:EUR", payable, 490),
            Leg("goodwill", "m1:refund_expense:EUR", payable, 20),
        ),
    )
    assert [held.transfer_key(leg) for leg in held.legs] == [
        "r1:hold2:goods",
        "r1:hold2:tax",
        "r1:hold2:shipping",
        "r1:hold2:goodwill",
    ]


def test_a_refund_naming_no_lines_gives_back_sales() -> None:
    amount = Money(value=700, currency="EUR")
    for allocation in (None, Allocation(currency="EUR", unallocated=500)):  # none, or not this amount
        assert refund_allocation(amount, allocation) == Allocation(currency="EUR", unallocated=700)
        assert reservation("r1", "m1", 1, amount, allocation).legs == (
            Leg("goods", "m1:refund_contra_revenue:EUR", "m1:customer_refunds_payable:EUR", 700),
        )
    in_another_currency = Allocation(currency="USD", unallocated=700)
    assert refund_allocation(amount, in_another_currency).currency == "EUR"


def test_a_payout_in_the_refunds_currency() -> None:
    [payout] = payout_postings("r1", "m1", "adyen", Money(value=1_680, currency="EUR"), None)
    assert payout == Posting(
        "r1",
        "m1",
        "EUR",
        "r1:payout:EUR",
        (Leg("payout", "m1:customer_refunds_payable:EUR", "m1:psp_receivable:adyen:EUR", 1_680),),
    )
    assert payout.transfer_key(payout.legs[0]) == "r1:payout:EUR:payout"


@pytest.mark.parametrize(("refund_settled", "last_leg"), [(4_750, "fx_loss"), (4_250, "fx_gain")])
def test_a_payout_from_a_balance_in_another_currency(refund_settled: int, last_leg: str) -> None:
    fx = FxFacts(
        captured=Money(value=10_000, currency="USD"),
        captured_settled=Money(value=9_000, currency="EUR"),
        refund_settled=Money(value=refund_settled, currency="EUR"),
    )
    converted, settlement = payout_postings("r1", "m1", "stripe", Money(value=5_000, currency="USD"), fx)
    assert converted == Posting(
        "r1",
        "m1",
        "USD",
        "r1:payout:USD",
        (Leg("payout", "m1:customer_refunds_payable:USD", "m1:fx_conversion:USD", 5_000),),
    )
    receivable, difference = "m1:psp_receivable:stripe:EUR", "m1:fx_difference:EUR"
    fx_leg = (
        Leg("fx_loss", difference, receivable, 250)
        if last_leg == "fx_loss"
        else Leg("fx_gain", receivable, difference, 250)
    )
    assert settlement == Posting(
        "r1",
        "m1",
        "EUR",
        "r1:payout:EUR",
        (Leg("payout", "m1:fx_conversion:EUR", receivable, 4_500), fx_leg),
    )


def test_a_payout_settled_in_the_refunds_own_currency_needs_no_conversion() -> None:
    fx = FxFacts(
        captured=Money(value=10_000, currency="EUR"),
        captured_settled=Money(value=10_000, currency="EUR"),
        refund_settled=Money(value=700, currency="EUR"),
    )
    refund = Money(value=700, currency="EUR")
    assert payout_postings("r1", "m1", "stripe", refund, fx) == payout_postings(
        "r1", "m1", "stripe", refund, None
    )


def test_a_reversal_undoes_each_currency_under_one_key_prefix() -> None:
    transfers = [
        Transfer("r1:hold1:goods:post", "m1:refund_contra_revenue:USD", "m1:customer_refunds_payable:USD", 5, "USD", "post_pending", "m1"),  # noqa: E501
        Transfer("r1:payout:USD:payout", "m1:customer_refunds_payable:USD", "m1:fx_conversion:USD", 5, "USD", "single", "m1"),  # noqa: E501
        Transfer("r1:payout:EUR:payout", "m1:fx_conversion:EUR", "m1:psp_receivable:stripe:EUR", 4, "EUR", "single", "m1"),  # noqa: E501
    ]  # fmt: skip
    eur, usd = reversal_postings("r1", transfers)
    assert (eur.currency, usd.currency) == ("EUR", "USD")  # in the order of their codes
    assert eur.key_prefix == usd.key_prefix == "r1:reversal"
    assert [eur.transfer_key(leg) for leg in eur.legs] == ["r1:reversal:r1/payout/EUR/payout"]
    assert usd.legs[0] == Leg(
        "r1/hold1/goods/post", "m1:customer_refunds_payable:USD", "m1:refund_contra_revenue:USD", 5
    )
    assert reversal_postings("r1", []) == []


def test_a_refund_made_outside_the_product_is_posted_at_once() -> None:
    posting = external_refund("external:stripe:re_1", "m1", "stripe", Money(value=900, currency="EUR"))
    assert posting.key_prefix == "external:stripe:re_1:external"
    assert posting.legs == (
        Leg("goods", "m1:refund_contra_revenue:EUR", "m1:customer_refunds_payable:EUR", 900),
        Leg("payout", "m1:customer_refunds_payable:EUR", "m1:psp_receivable:stripe:EUR", 900),
    )


def test_pending_transfers_are_posted_or_voided_under_their_own_key() -> None:
    assert resolution("r1:hold1:goods", post=True) == ("r1:hold1:goods:post", Phase.POST_PENDING)
    assert resolution("r1:hold1:goods", post=False) == ("r1:hold1:goods:void", Phase.VOID_PENDING)
    assert set(POSTED_PHASES) == {"single", "post_pending"}


def test_only_a_succeeded_refund_moves_money() -> None:
    amount = Money(value=1, currency="EUR")
    assert money_moved(RefundStatus.SUCCEEDED, RefundMethod.REFUND, amount)
    assert not money_moved(RefundStatus.SUCCEEDED, RefundMethod.VOID, amount)
    assert not money_moved(RefundStatus.SUCCEEDED, RefundMethod.REFUND, None)
    assert not money_moved(RefundStatus.FAILED, RefundMethod.REFUND, amount)


# whatever the amounts -------------------------------------------------------------------------


@given(
    allocation=allocations(),
    merchant=st.sampled_from(MERCHANTS),
    provider=st.sampled_from(PROVIDERS),
    hold=st.integers(min_value=1, max_value=3),
    reversed_=st.booleans(),
)
def test_a_refunds_life_balances_and_leaves_nothing_owed(
    allocation: Allocation, merchant: str, provider: str, hold: int, reversed_: bool
) -> None:
    amount = Money(value=allocation.total, currency=allocation.currency)
    held = reservation("r1", merchant, hold, amount, allocation)
    payouts = payout_postings("r1", merchant, provider, amount, None)
    for posting in (held, *payouts):
        assert_well_formed(posting)
    # the costs add up to the refund, each kind on its own account
    assert sum(leg.amount for leg in held.legs) == amount.value
    assert all(leg.amount > 0 for leg in held.legs)
    books = net([held, *payouts])
    assert set(per_currency(books).values()) <= {0}
    assert (
        account(merchant, AccountName.CUSTOMER_REFUNDS_PAYABLE, amount.currency),
        amount.currency,
    ) not in books
    assert paid_out(books, provider, amount.currency) == amount.value
    transfers = posted(held, payouts)
    keys = [held.transfer_key(leg) for leg in held.legs] + [t.transfer_key for t in transfers]
    if reversed_:
        reversal = reversal_postings("r1", transfers)
        assert net([held, *payouts, *reversal]) == {}
        keys += [p.transfer_key(leg) for p in reversal for leg in p.legs]
    assert len(set(keys)) == len(keys)  # a repeated key would drop a transfer as already stored


@given(
    captured=st.integers(min_value=1, max_value=10**9),
    captured_settled=st.integers(min_value=0, max_value=10**9),
    refund_settled=st.integers(min_value=0, max_value=10**9),
    currencies=st.lists(st.sampled_from(CURRENCIES), min_size=2, max_size=2, unique=True),
    provider=st.sampled_from(PROVIDERS),
    data=st.data(),
)
def test_a_payout_from_another_currency_balances_in_each_and_books_the_whole_difference(
    captured: int,
    captured_settled: int,
    refund_settled: int,
    currencies: list[str],
    provider: str,
    data: st.DataObject,
) -> None:
    paid_in, settled_in = currencies
    refund = Money(
        value=data.draw(st.integers(min_value=0, max_value=captured), label="refund"), currency=paid_in
    )
    fx = FxFacts(
        captured=Money(value=captured, currency=paid_in),
        captured_settled=Money(value=captured_settled, currency=settled_in),
        refund_settled=Money(value=refund_settled, currency=settled_in),
    )
    held = reservation("r1", "m1", 1, refund, None)
    payouts = payout_postings("r1", "m1", provider, refund, fx)
    assert [p.currency for p in payouts] == [paid_in, settled_in]
    for posting in (held, *payouts):
        assert_well_formed(posting)
    books = net([held, *payouts])
    assert set(per_currency(books).values()) <= {0}
    receivable = account("m1", AccountName.PSP_RECEIVABLE, settled_in, provider)
    assert books.get((receivable, settled_in), 0) == -refund_settled  # what the PSP took, exactly
    conversion = account("m1", AccountName.FX_CONVERSION, settled_in)
    assert books.get((conversion, settled_in), 0) == at_capture_rate(refund, fx)  # what the sale brought
    assert paid_out(books, provider, paid_in) == refund.value
    reversal = reversal_postings("r1", posted(held, payouts))
    assert net([held, *payouts, *reversal]) == {}


@given(
    amount=st.integers(min_value=0, max_value=10**15),
    currency=st.sampled_from(CURRENCIES),
    provider=st.sampled_from(PROVIDERS),
)
def test_a_refund_made_outside_the_product_balances_and_is_paid_out(
    amount: int, currency: str, provider: str
) -> None:
    refund = Money(value=amount, currency=currency)
    posting = external_refund("external:x", "m1", provider, refund)
    assert_well_formed(posting)
    books = net([posting])
    assert set(per_currency(books).values()) <= {0}
    assert paid_out(books, provider, currency) == amount
    assert ("m1:customer_refunds_payable:" + currency, currency) not in books


@given(allocation=allocations(currency="EUR"))
def test_cost_legs_cover_the_allocation_exactly(allocation: Allocation) -> None:
    legs = cost_legs("m1", allocation)
    assert sum(leg.amount for leg in legs) == allocation.total
    by_kind = {leg.name: leg.amount for leg in legs}
    itemised = bool(allocation.lines)
    assert by_kind.get("goods", 0) == allocation.goods + (0 if itemised else allocation.unallocated)
    assert by_kind.get("goodwill", 0) == (allocation.unallocated if itemised else 0)
    assert (by_kind.get("tax", 0), by_kind.get("shipping", 0)) == (allocation.tax, allocation.shipping)
