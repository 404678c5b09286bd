"""What refunds on early fraud warnings saved, purely: the policy's chargeback fee, parsed exactly,
and the sums per merchant and currency (only refunds that succeeded, in integers)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import domain.policy_file
from domain.money import Money, currency_exponent, format_minor, parse_major_text
from domain.policy_file import PolicyError, parse_policy
from domain.status import RefundStatus
from domain.warning_savings import Savings, WarningRefund, savings
from workers.dev_policy import write_dev_policy
from workers.settings import Settings

CURRENCIES = ("EUR", "JPY", "KWD", "USD")


def refund(value: int, currency: str = "EUR", status: RefundStatus = RefundStatus.SUCCEEDED) -> WarningRefund:
    return WarningRefund(merchant_id="acme", status=status, amount=Money(value=value, currency=currency))


# the fee, exactly --------------------------------------------------------------------------------


@given(st.integers(min_value=0, max_value=10**14), st.sampled_from(CURRENCIES))
def test_a_major_amount_written_out_reads_back_to_the_same_minor_units(value: int, currency: str) -> None:
    assert parse_major_text(format_minor(value, currency), currency) == value


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("15.00", "EUR", 1500),
        ("15", "EUR", 1500),
        ("0.1", "EUR", 10),
        ("1500", "JPY", 1500),
        ("4.125", "KWD", 4125),
    ],
)
def test_fees_in_major_units(text: str, currency: str, minor: int) -> None:
    assert parse_major_text(text, currency) == minor


@pytest.mark.parametrize(
    "text", ["15.001", "1e3", "-1", " 15", "15.", ".5", "1_000", "15\n", "NaN", "", "1" * 16]
)
def test_what_is_not_an_exact_amount_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_major_text(text, "EUR")


def test_a_fee_has_no_more_decimals_than_its_currency() -> None:
    assert currency_exponent("JPY") == 0
    with pytest.raises(ValueError, match="more decimals than JPY"):
        parse_major_text("15.5", "JPY")


def test_the_policy_file_takes_a_chargeback_fee_per_currency(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(
        'version = "1"\n[early_fraud_warnings]\nchargeback_fee = { EUR = "15.00", JPY = "2000" }\n'
    )
    fees = Settings(policy_file=path).policy().early_fraud_warnings.chargeback_fees
    assert fees == {"EUR": 1500, "JPY": 2000}
    assert Settings().policy().early_fraud_warnings.chargeback_fees == {}  # built in: not set


@pytest.mark.parametrize(
    ("fee", "complaint"),
    [
        ("{ EUR = 15.00 }", 'EUR: write the fee as a string, like "15.00"'),
        ("{ EUR = 15 }", "EUR: write the fee as a string"),
        ('{ EURO = "15.00" }', "EURO: not an ISO 4217 code"),
        ('{ eur = "15.00" }', "eur: not an ISO 4217 code"),
        ('{ EUR = "15.001" }', "EUR: '15.001' has more decimals than EUR has"),
        ('{ EUR = "-15" }', "EUR: '-15' is not an amount like 15.00"),
        ('"15.00"', "early_fraud_warnings.chargeback_fee"),
    ],
)
def test_a_wrong_fee_stops_the_product_naming_the_field(fee: str, complaint: str) -> None:
    text = f'version = "1"\n[early_fraud_warnings]\nchargeback_fee = {fee}\n'
    with pytest.raises(PolicyError, match=r"early_fraud_warnings\.chargeback_fee") as err:
        parse_policy(text, "p.toml")
    assert complaint in str(err.value)


def test_the_documented_policy_file_parses() -> None:
    """The example in `domain/policy_file.py`'s docstring, fee table included, is a valid file."""
    doc = domain.policy_file.__doc__ or ""
    example = "\n".join(line[4:] for line in doc.splitlines() if line.startswith("    "))
    rules = parse_policy(re.sub(r"(?m)^\s+", "", example), "policy_file.__doc__")
    assert rules.early_fraud_warnings.chargeback_fees_minor() == {"EUR": 1500, "USD": 1500}


# what was saved ----------------------------------------------------------------------------------


def test_the_fees_avoided_are_what_was_saved() -> None:
    made = [
        refund(4_000),
        refund(1_000),
        refund(3_000, status=RefundStatus.FAILED),  # failed by the PSP after succeeding
        refund(9_000, status=RefundStatus.REJECTED),  # held for review, and a reviewer said no
        refund(12_000, "JPY"),
        WarningRefund(merchant_id="acme", status=RefundStatus.FAILED, amount=None),
    ]
    eur, jpy = savings(made, {"acme": {"EUR": 1_500}})
    assert eur == Savings("acme", "EUR", refunds=2, refunded=5_000, fee=1_500)
    assert (eur.chargebacks_would_have_cost, eur.saved) == (8_000, 3_000)
    assert jpy == Savings("acme", "JPY", refunds=1, refunded=12_000, fee=None)  # no fee for JPY
    assert (jpy.chargebacks_would_have_cost, jpy.saved) == (None, None)


def test_a_currency_whose_refunds_all_failed_saved_nothing_and_says_so() -> None:
    [usd] = savings([refund(2_000, "USD", RefundStatus.FAILED)], {"acme": {"USD": 1_500}})
    assert (usd.refunds, usd.refunded, usd.saved, usd.chargebacks_would_have_cost) == (0, 0, 0, 0)


def test_each_merchant_saves_by_its_own_fee() -> None:
    made = [
        refund(1_000),
        WarningRefund("globex", RefundStatus.SUCCEEDED, Money(value=1_000, currency="EUR")),
    ]
    acme, globex = savings(made, {"acme": {"EUR": 1_500}, "globex": {"EUR": 2_000}})
    assert (acme.merchant_id, acme.saved, globex.merchant_id, globex.saved) == (
        "acme",
        1_500,
        "globex",
        2_000,
    )
    assert savings([], {"acme": {"EUR": 1_500}}) == []


settled = st.builds(
    refund,
    st.integers(min_value=1, max_value=10**12),
    st.sampled_from(CURRENCIES),
    st.sampled_from(list(RefundStatus)),
)
fee_tables = st.dictionaries(st.sampled_from(CURRENCIES), st.integers(min_value=0, max_value=10**6))


@given(st.lists(settled, max_size=30), fee_tables)
def test_saved_is_the_fee_once_per_refund_that_succeeded(
    made: list[WarningRefund], fees: dict[str, int]
) -> None:
    lines = savings(made, {"acme": fees})
    assert [line.currency for line in lines] == sorted({r.amount.currency for r in made if r.amount})
    for line in lines:
        mine = [r for r in made if r.amount and r.amount.currency == line.currency]
        succeeded = [r for r in mine if r.status is RefundStatus.SUCCEEDED]
        assert line.refunds == len(succeeded)
        assert line.refunded == sum(r.amount.value for r in succeeded if r.amount)
        assert line.fee == fees.get(line.currency)
        if line.fee is None:
            assert line.saved is None and line.chargebacks_would_have_cost is None
        else:
            assert line.saved == line.refunds * line.fee
            assert line.chargebacks_would_have_cost == line.refunded + line.saved
        assert all(isinstance(v, int) for v in (line.refunds, line.refunded, line.saved or 0))


@given(st.lists(settled, min_size=1, max_size=30), fee_tables, st.data())
def test_a_refund_the_psp_fails_later_never_adds_to_what_was_saved(
    made: list[WarningRefund], fees: dict[str, int], data: st.DataObject
) -> None:
    index = data.draw(st.integers(min_value=0, max_value=len(made) - 1))
    failed = [*made]
    failed[index] = WarningRefund(made[index].merchant_id, RefundStatus.FAILED, made[index].amount)
    before = {line.currency: line for line in savings(made, {"acme": fees})}
    after = {line.currency: line for line in savings(failed, {"acme": fees})}
    assert before.keys() == after.keys()  # the currency is still listed, at less
    for currency, line in after.items():
        assert line.refunded <= before[currency].refunded
        assert (line.saved or 0) <= (before[currency].saved or 0)


# refunds dev's policy ----------------------------------------------------------------------------


@pytest.mark.parametrize("settings", [{}, {"review_threshold_major": 500, "shipping_policy": "never"}])
def test_dev_runs_the_built_in_policy_with_warnings_refunded(
    tmp_path: Path, settings: dict[str, object]
) -> None:
    """Only its version and `[early_fraud_warnings]` differ from the built-in policy, whatever the
    settings the built-in one reads; so a default that changes there fails here."""
    built_in = Settings(**settings).policy()  # type: ignore[arg-type]
    dev = Settings(**settings, policy_file=write_dev_policy(Settings(**settings), tmp_path)).policy()  # type: ignore[arg-type]
    assert dev.early_fraud_warnings.mode == "refund"
    assert dev.early_fraud_warnings.chargeback_fees["EUR"] == 1_500
    assert (
        dev.model_copy(
            update={"version": built_in.version, "early_fraud_warnings": built_in.early_fraud_warnings}
        )
        == built_in
    )
