"""Currency differences between a capture and its refund: posted to their own account, never lost."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.db import ledger
from domain.fx import FxFacts, at_capture_rate, fx_difference
from domain.money import Money
from sandbox.paypal.control import PayPalSandboxControl
from sandbox.stripe.control import SandboxControl
from sandbox.stripe.objects import convert
from tests.conftest import Stack
from tests.flows import refund_through_pipeline, run_reconcile


@given(
    captured=st.integers(min_value=1, max_value=10**9),
    settled=st.integers(min_value=0, max_value=10**9),
    data=st.data(),
)
def test_the_capture_rate_is_applied_exactly_and_rounded_half_even(
    captured: int, settled: int, data: st.DataObject
) -> None:
    refund = data.draw(st.integers(min_value=0, max_value=captured), label="refund")
    facts = FxFacts(
        captured=Money(value=captured, currency="USD"),
        captured_settled=Money(value=settled, currency="EUR"),
        refund_settled=Money(value=0, currency="EUR"),
    )
    converted = at_capture_rate(Money(value=refund, currency="USD"), facts)
    exact = Fraction(refund * settled, captured)
    assert abs(converted - exact) <= Fraction(1, 2)
    if abs(converted - exact) == Fraction(1, 2):
        assert converted % 2 == 0
    if refund == captured:
        assert converted == settled


def test_a_loss_and_a_gain() -> None:
    facts = FxFacts(
        captured=Money(value=10_000, currency="USD"),
        captured_settled=Money(value=9_000, currency="EUR"),
        refund_settled=Money(value=4_750, currency="EUR"),
    )
    refund = Money(value=5_000, currency="USD")
    assert (at_capture_rate(refund, facts), fx_difference(refund, facts)) == (4_500, 250)
    cheaper = facts.model_copy(update={"refund_settled": Money(value=4_250, currency="EUR")})
    assert fx_difference(refund, cheaper) == -250
    with pytest.raises(ValueError):
        at_capture_rate(Money(value=1, currency="GBP"), facts)


@pytest.mark.parametrize(
    ("amount", "currency", "into", "rate", "expected"),
    [
        (10_000, "USD", "EUR", "0.9", 9_000),
        (10_000, "JPY", "EUR", "0.0061", 6_100),  # 10,000 yen at 0.0061 is 61.00 euros
        (1_000, "EUR", "KWD", "0.3335", 3_335),  # 10.00 euros is 3.335 dinars
        (5, "USD", "EUR", "0.9", 4),  # 4.5 cents rounds to even
    ],
)
def test_the_sandbox_converts_between_exponents(
    amount: int, currency: str, into: str, rate: str, expected: int
) -> None:
    assert convert(amount, currency, into, Decimal(rate)) == expected


@pytest.mark.parametrize(("refund_rate", "difference"), [("0.95", 250), ("0.85", -250)])
async def test_a_refund_settled_at_another_rate_books_its_fx_difference(
    stack: Stack, sandbox: SandboxControl, refund_rate: str, difference: int
) -> None:
    payment = sandbox.seed_stripe_payment(
        amount=10_000,
        currency="USD",
        settlement_currency="EUR",
        exchange_rate="0.90",
        refund_exchange_rate=refund_rate,
    )
    view = await refund_through_pipeline(stack, payment, amount=5_000, currency="USD")
    assert view["status"] == "succeeded"

    m = stack.settings.merchant_id
    with stack.database.transaction() as session:
        assert ledger.balances(session, view["request_id"]) == {
            (f"{m}:refund_contra_revenue:USD", "USD"): 5_000,
            (f"{m}:fx_conversion:USD", "USD"): -5_000,
            (f"{m}:fx_conversion:EUR", "EUR"): 4_500,  # what the sale brought in
            (f"{m}:fx_difference:EUR", "EUR"): difference,
            (f"{m}:psp_receivable:stripe:EUR", "EUR"): -(4_500 + difference),  # what Stripe took
        }
    posted = next(e for e in view["audit"] if e["step"] == "ledger_posted")
    assert posted["detail"]["fx_difference"] == str(difference)
    assert await run_reconcile(stack, "stripe", payment) == (0, [])


@pytest.mark.parametrize(("refund_rate", "difference"), [("0.95", 250), ("0.85", -250)])
async def test_a_paypal_refund_settled_at_another_rate_books_its_fx_difference(
    stack: Stack, paypal: PayPalSandboxControl, refund_rate: str, difference: int
) -> None:
    """PayPal reports the conversion in the capture's `seller_receivable_breakdown` (receivable_amount
    and the fee there, exchange_rate) and the refund's `seller_payable_breakdown`
    (net_amount_in_receivable_currency), as its published schema has them: booked as Stripe's is."""
    capture = paypal.seed_capture(
        amount="100.00",
        currency="USD",
        receivable_currency="EUR",
        exchange_rate="0.90",
        refund_exchange_rate=refund_rate,
    )
    view = await refund_through_pipeline(stack, capture, amount=5_000, currency="USD", provider="paypal")
    assert view["status"] == "succeeded", view

    m = stack.settings.merchant_id
    with stack.database.transaction() as session:
        balances = ledger.balances(session, view["request_id"])
    assert balances[(f"{m}:fx_conversion:EUR", "EUR")] == 4_500  # what the sale brought in, gross
    assert balances[(f"{m}:fx_difference:EUR", "EUR")] == difference
    assert balances[(f"{m}:psp_receivable:paypal:EUR", "EUR")] == -(4_500 + difference)


async def test_a_fee_paypal_gives_back_is_posted_to_its_fees_and_the_books_still_reconcile(
    stack: Stack, paypal: PayPalSandboxControl
) -> None:
    """Where PayPal gives back a refund's share of the capture's fee (`seller_payable_breakdown.
    paypal_fee`), it comes into our balance there out of the fees account; reconciliation still sees
    the whole refund paid."""
    capture = paypal.seed_capture(amount="100.00", currency="EUR", returns_fees=True)
    view = await refund_through_pipeline(stack, capture, amount=5_000, currency="EUR", provider="paypal")
    assert view["status"] == "succeeded", view
    m = stack.settings.merchant_id
    with stack.database.transaction() as session:
        balances = ledger.balances(session, view["request_id"])
    assert balances[(f"{m}:psp_fees:paypal:EUR", "EUR")] == -150  # 3% of 50.00 given back
    assert balances[(f"{m}:psp_receivable:paypal:EUR", "EUR")] == -(5_000 - 150)
    posted = next(e for e in view["audit"] if e["step"] == "ledger_posted")
    assert posted["detail"]["fee_returned"] == "150"
    assert await run_reconcile(stack, "paypal", capture) == (0, [])
