"""The early fraud warning policy, purely: what `[early_fraud_warnings]` does with a warning."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from domain.contracts import FraudWarningPolicy, RefundPolicy
from domain.fraud_warnings import Action, FraudWarning, decide, request_id_for
from domain.money import Money
from domain.policy_file import PolicyError, parse_policy
from domain.requests import REFUND_ID_LENGTH, REQUEST_ID_PATTERN
from workers.settings import Settings

WARNING = FraudWarning(
    provider="stripe", warning_id="issfr_1", payment_reference="pi_1", fraud_type="made_with_stolen_card"
)
EUR = RefundPolicy(review_currencies={"EUR": 100, "JPY": 160})


def policy(mode: str = "refund", up_to: int = 200, types: tuple[str, ...] = ("misc",)) -> RefundPolicy:
    rules = FraudWarningPolicy(mode=mode, refund_up_to_major=up_to, review_fraud_types=types)
    return EUR.model_copy(update={"early_fraud_warnings": rules})


def eur(value: int) -> Money:
    return Money(value=value, currency="EUR")


def test_the_built_in_policy_only_records() -> None:
    assert RefundPolicy().early_fraud_warnings.mode == "record"
    assert decide(RefundPolicy(), WARNING, eur(100), disputed=False).action is Action.RECORD


def test_up_to_the_amount_refunds_above_it_a_human_decides() -> None:
    assert decide(policy(), WARNING, eur(20_000), disputed=False).action is Action.REFUND
    above = decide(policy(), WARNING, eur(20_001), disputed=False)
    assert above.action is Action.REVIEW and "above" in above.why
    [hold] = above.hold()
    assert (hold.code, hold.points) == ("early_fraud_warning", 0)
    assert decide(policy(), WARNING, eur(100), disputed=False).hold() == ()


def test_amounts_convert_through_the_review_currencies_table() -> None:
    yen = Money(value=200 * 160, currency="JPY")
    assert decide(policy(), WARNING, yen, disputed=False).action is Action.REFUND
    assert (
        decide(policy(), WARNING, yen.model_copy(update={"value": 200 * 160 + 1}), False).action
        is Action.REVIEW
    )
    unlisted = decide(policy(), WARNING, Money(value=1, currency="USD"), disputed=False)
    assert unlisted.action is Action.REVIEW and "USD" in unlisted.why


@pytest.mark.parametrize(
    ("warning", "refundable", "disputed", "action"),
    [
        (WARNING.model_copy(update={"actionable": False}), eur(100), False, Action.RECORD),
        (WARNING, eur(100), True, Action.RECORD),  # the dispute decides; a refund would pay twice
        (WARNING, eur(0), False, Action.RECORD),  # nothing left to refund
        (WARNING.model_copy(update={"fraud_type": "misc"}), eur(100), False, Action.REVIEW),
        (WARNING, None, False, Action.REVIEW),  # the amount is unknown: a human looks
    ],
)
def test_what_policy_does_with_a_warning(
    warning: FraudWarning, refundable: Money | None, disputed: bool, action: Action
) -> None:
    assert decide(policy(), warning, refundable, disputed).action is action


def test_review_mode_holds_every_actionable_warning() -> None:
    assert decide(policy("review"), WARNING, eur(1), disputed=False).action is Action.REVIEW
    assert decide(policy("review"), WARNING, eur(1), disputed=True).action is Action.RECORD


def test_the_request_id_is_the_warnings_own_and_always_a_request_id() -> None:
    assert request_id_for("stripe", "issfr_1ABC") == "efw-stripe-issfr_1ABC"
    assert request_id_for("stripe", "issfr_1ABC") == request_id_for("stripe", "issfr_1ABC")
    odd = request_id_for("adyen", "a b/c" * 40, owner="globex")
    assert odd.startswith("efw-adyen-sha-") and len("globex~" + odd) <= REFUND_ID_LENGTH
    assert re.match(REQUEST_ID_PATTERN, odd)


def test_the_policy_file_section() -> None:
    text = (
        'version = "1"\n[early_fraud_warnings]\nmode = "refund"\nrefund_up_to_major = 150\n'
        'review_fraud_types = ["misc"]\n'
    )
    rules = parse_policy(text, "p.toml").early_fraud_warnings
    assert (rules.mode, rules.refund_up_to_major, rules.review_fraud_types) == ("refund", 150, ["misc"])
    assert parse_policy('version = "1"\n', "p.toml").early_fraud_warnings.mode == "record"
    with pytest.raises(PolicyError, match=r"early_fraud_warnings\.mode"):
        parse_policy('version = "1"\n[early_fraud_warnings]\nmode = "refund_all"\n', "p.toml")


def test_the_policy_file_reaches_the_policy_refunds_start_under(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('version = "1"\n[early_fraud_warnings]\nmode = "review"\nreview_fraud_types = ["misc"]\n')
    rules = Settings(policy_file=path).policy().early_fraud_warnings
    assert rules == FraudWarningPolicy(mode="review", refund_up_to_major=0, review_fraud_types=("misc",))
    assert Settings().policy().early_fraud_warnings == FraudWarningPolicy()
