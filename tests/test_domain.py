"""Pure rules: money, amount, risk, signatures, idempotency keys."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain import signature
from domain.amount import refund_amount
from domain.contracts import PaymentRecord, RefundPolicy, RiskSignals
from domain.money import Money, currency_exponent, format_minor, major_to_minor
from domain.naming import idempotency_key
from domain.requests import RefundRequest
from domain.risk import assess_risk
from domain.status import ErrorCode, PaymentState, Provider

CURRENCIES = ["EUR", "USD", "JPY", "KWD", "CLP", "BHD", "GBP"]

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def payment(captured: int, refunded: int = 0, currency: str = "EUR") -> PaymentRecord:
    return PaymentRecord(
        provider=Provider.STRIPE,
        reference="pi_1",
        state=PaymentState.CAPTURED,
        currency=currency,
        amount_captured=captured,
        amount_refunded=refunded,
    )


def request(amount: int | None, currency: str = "EUR", customer: str | None = "cus_1") -> RefundRequest:
    return RefundRequest(
        request_id="r1",
        provider=Provider.STRIPE,
        payment_reference="pi_1",
        amount=None if amount is None else Money(value=amount, currency=currency),
        reason_code="damaged",
        order_id="o1",
        customer_id=customer,
    )


@pytest.mark.parametrize(
    ("currency", "exponent", "value", "text"),
    [
        ("EUR", 2, 1250, "12.50"),
        ("JPY", 0, 500, "500"),
        ("KWD", 3, 1005, "1.005"),
        ("CLP", 0, 7, "7"),
    ],
)
def test_minor_units_format_exactly(currency: str, exponent: int, value: int, text: str) -> None:
    assert currency_exponent(currency) == exponent
    assert format_minor(value, currency) == text


@given(st.integers(min_value=0, max_value=10**15), st.sampled_from(CURRENCIES))
def test_format_round_trips_without_floats(value: int, currency: str) -> None:
    text = format_minor(value, currency)
    assert int(Decimal(text).scaleb(currency_exponent(currency))) == value


def test_money_refuses_negative_and_non_iso() -> None:
    with pytest.raises(ValueError):
        Money(value=-1, currency="EUR")
    with pytest.raises(ValueError):
        Money(value=1, currency="E1R")
    assert Money(value=1, currency="eur").currency == "EUR"


@given(
    captured=st.integers(min_value=1, max_value=10**12),
    refunded_share=st.integers(min_value=0, max_value=100),
    requested=st.one_of(st.none(), st.integers(min_value=1, max_value=10**12)),  # 0 is refused at intake
)
def test_amount_never_exceeds_what_is_refundable(
    captured: int, refunded_share: int, requested: int | None
) -> None:
    refunded = captured * refunded_share // 100
    record = payment(captured, refunded)
    decision = refund_amount(request(requested), record)
    if decision.amount is None:
        assert decision.error in {ErrorCode.REFUND_EXCEEDS_CAPTURE, ErrorCode.INVALID_AMOUNT}
        return
    assert 0 < decision.amount.value <= captured - refunded
    expected = captured - refunded if requested is None else requested
    assert decision.amount.value == expected


def test_amount_refuses_currency_mismatch() -> None:
    decision = refund_amount(request(100, "USD"), payment(1_000))
    assert decision.error is ErrorCode.CURRENCY_MISMATCH


@given(st.integers(min_value=1, max_value=10**9), st.sampled_from(CURRENCIES))
def test_review_exactly_at_or_above_threshold(value: int, currency: str) -> None:
    policy = RefundPolicy(review_threshold_major=1_000)
    threshold = major_to_minor(1_000, currency)
    risk = assess_risk(
        request(value, currency),
        payment(10**10, currency=currency),
        Money(value=value, currency=currency),
        policy,
        RiskSignals(),
        NOW,
    )
    assert risk.requires_review is (value >= threshold)
    assert 0 <= risk.score <= 100
    assert risk.score == min(sum(r.points for r in risk.reasons), 100)


def test_risk_reasons_explain_the_score() -> None:
    risk = assess_risk(
        request(1_000, customer=None),
        payment(1_000),
        Money(value=1_000, currency="EUR"),
        RefundPolicy(),
        RiskSignals(),
        NOW,
    )
    assert {r.code for r in risk.reasons} == {"amount", "full_refund", "anonymous_customer"}


def test_idempotency_keys_are_deterministic_per_generation() -> None:
    assert idempotency_key("abc", 1) == idempotency_key("abc", 1) == "refund:abc"
    assert idempotency_key("abc", 2) == "refund:abc:2"
    assert len({idempotency_key("abc", g) for g in range(1, 6)}) == 5
    with pytest.raises(ValueError):
        idempotency_key("abc", 0)


@given(st.binary(max_size=512), st.integers(min_value=0, max_value=2**31))
def test_signature_round_trip_and_tamper(body: bytes, stamp: int) -> None:
    header = signature.sign(["s1"], stamp, body)
    assert signature.verify(header, body, ["s1"], stamp).timestamp == stamp
    with pytest.raises(signature.SignatureError):
        signature.verify(header, body + b"x", ["s1"], stamp)
    with pytest.raises(signature.SignatureError):
        signature.verify(header, body, ["s2"], stamp)


def test_signature_freshness_window() -> None:
    header = signature.sign(["s"], 1_000, b"{}")
    assert signature.verify(header, b"{}", ["s"], 1_300)
    with pytest.raises(signature.SignatureError) as err:
        signature.verify(header, b"{}", ["s"], 1_301)
    assert err.value.code == "signature_expired"
    assert signature.verify(header, b"{}", ["s"], 10**9, tolerance=None)


def test_messages_show_money_in_its_currency_never_bare_minor_units() -> None:
    decision = refund_amount(request(99_999_999), payment(10_000, refunded=5_125))
    assert decision.message == "requested 999999.99 EUR, only 48.75 EUR is refundable"
