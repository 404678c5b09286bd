"""Review amounts are set per currency: the policy's amounts are converted through its currency table,
and a currency the table does not list is always reviewed, never skipped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.contracts import PaymentRecord, RefundPolicy, RiskSignals
from domain.money import Money
from domain.policy_file import PolicyError, parse_policy
from domain.requests import RefundRequest
from domain.risk import assess_risk
from domain.status import PaymentState, Provider
from workers.settings import Settings

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
FOUR_EYES = Settings().policy().model_copy(update={"four_eyes_above_major": 1_000})


def _assess(value: int, currency: str, policy: RefundPolicy = FOUR_EYES) -> tuple[bool, int]:
    request = RefundRequest(
        request_id="r-1",
        provider=Provider.STRIPE,
        payment_reference="pi_1",
        reason_code="changed_mind",
        order_id="o-1",
        customer_id="cus-1",
    )
    payment = PaymentRecord(
        provider=Provider.STRIPE,
        reference="pi_1",
        state=PaymentState.CAPTURED,
        currency=currency,
        amount_captured=value * 10,
        created_at=NOW - timedelta(days=30),
    )
    risk = assess_risk(request, payment, Money(value=value, currency=currency), policy, RiskSignals(), NOW)
    return risk.requires_review, risk.approvals_needed


def test_500_yen_is_not_a_four_eyes_refund() -> None:
    """500 JPY (about 3 EUR) needed two approvals when thresholds were read in each currency's unit."""
    assert _assess(500, "JPY") == (False, 1)
    assert _assess(160_000, "JPY") == (True, 2)  # about 1,000 EUR


def test_a_large_dinar_refund_is_reviewed() -> None:
    """1,230.000 KWD (about 3,700 EUR) skipped review when 1,000 KWD-units were the threshold's."""
    assert _assess(1_230_000, "KWD") == (True, 2)
    assert _assess(3_000, "KWD") == (False, 1)  # 3 KWD, about 9 EUR


def test_a_currency_the_policy_does_not_list_is_reviewed_never_skipped() -> None:
    reviewed, approvals = _assess(100, "THB")  # one baht's worth of satang
    assert reviewed and approvals == 2  # four eyes wherever the policy wants them: it cannot size it


def test_a_policy_started_before_the_table_keeps_each_currencys_own_unit() -> None:
    """Refunds in flight carry their policy; an empty table decides as they were decided."""
    legacy = RefundPolicy(four_eyes_above_major=1_000)
    assert _assess(100_000, "JPY", legacy) == (True, 2)


def test_the_policy_file_sets_the_table_and_refuses_bad_entries() -> None:
    text = 'version = "1"\n[review]\nthreshold_major = 100\n[review.currencies]\nEUR = 100\nJPY = 160\n'
    rules = parse_policy(text, "policy.toml")
    assert rules.review.currencies == {"EUR": 100, "JPY": 160}
    for bad in ("XYZ = 1", "EUR = 0", "EUR = 1.5"):
        with pytest.raises(PolicyError):
            parse_policy(f'version = "1"\n[review.currencies]\n{bad}\n', "policy.toml")
