"""Risk: an explainable score from the request, the PSP's record and our own velocity, decided by a
versioned policy file that is refused at start when it is wrong."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from adapters.db import velocity
from adapters.db.engine import Database
from domain.contracts import PaymentRecord, RefundPolicy, RiskSignals
from domain.money import Money
from domain.policy_file import PolicyError, parse_policy
from domain.requests import RefundRequest
from domain.risk import assess_risk
from domain.status import PaymentState, Provider
from sandbox.stripe.control import SandboxControl
from tests.conftest import Stack, repo_root
from tests.flows import FINAL, refund_through_pipeline, submit, wait_for_status
from tests.helpers import refund_body, unique
from workers.settings import Settings

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def request(
    reason: str = "changed_mind", customer: str | None = "cus-1", order: str = "o-1"
) -> RefundRequest:
    return RefundRequest(
        request_id=unique("r"),
        provider=Provider.STRIPE,
        payment_reference="pi_1",
        reason_code=reason,
        order_id=order,
        customer_id=customer,
    )


def paid(amount: int, *, days_ago: float = 10) -> PaymentRecord:
    return PaymentRecord(
        provider=Provider.STRIPE,
        reference="pi_1",
        state=PaymentState.CAPTURED,
        currency="EUR",
        amount_captured=amount,
        created_at=NOW - timedelta(days=days_ago),
    )


def eur(value: int) -> Money:
    return Money(value=value, currency="EUR")


# the policy file -----------------------------------------------------------------------------------


def test_the_example_policy_file_is_valid() -> None:
    rules = parse_policy((repo_root() / "policy.example.toml").read_text(), "policy.example.toml")
    assert (rules.version, rules.review.four_eyes_above_major, rules.review.on_deadline) == (
        "2026-11-25.1",
        5_000,
        "reject",
    )


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ('version = "1"\n[review]\nthreshhold_major = 10\n', "review.threshhold_major: Extra inputs"),
        ("[review]\nthreshold_major = 10\n", "version: Field required"),
        ('version = "1"\n[review]\nthreshold_major = "lots"\n', "review.threshold_major"),
        ('version = "1"\n[review]\nescalate_after_hours = 80\n', "less than decide_after_hours"),
        ('version = "1"\n[review]\non_deadline = "shrug"\n', "review.on_deadline"),
        ("version = ", "not valid TOML"),
    ],
)
def test_a_bad_policy_file_names_the_file_and_the_field(text: str, complaint: str) -> None:
    with pytest.raises(PolicyError) as err:
        parse_policy(text, "/etc/refunds/policy.toml")
    assert str(err.value).startswith("/etc/refunds/policy.toml: ") and complaint in str(err.value)


def test_settings_apply_the_policy_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('version = "v7"\n[review]\nfour_eyes_above_major = 300\n[returns]\ndeadline_days = 30\n')
    policy = Settings(policy_file=path).policy()
    assert (policy.version, policy.four_eyes_above_major, policy.returns_deadline_seconds) == (
        "v7",
        300,
        30 * 24 * 3600,
    )
    with pytest.raises(PolicyError, match="cannot be read"):
        Settings(policy_file=tmp_path / "missing.toml").policy()


@pytest.mark.parametrize("command", ["worker", "serve"])
def test_a_process_refuses_to_start_on_a_bad_policy(tmp_path: Path, command: str) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('version = "1"\n[review]\nscore_threshold = 300\n')
    started = subprocess.run(
        [sys.executable, "-m", "workers.cli", command],
        env={
            **os.environ,
            "REFUNDS_ENVIRONMENT": "dev",
            "REFUNDS_POLICY_FILE": str(path),
            "REFUNDS_TEMPORAL_ADDRESS": "127.0.0.1:9",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode == 2
    assert "invalid_policy" in started.stderr and "review.score_threshold" in started.stderr


# the score -------------------------------------------------------------------------------------


def test_velocity_and_timing_raise_the_score_with_reasons() -> None:
    calm = assess_risk(request(), paid(10_000), eur(2_000), RefundPolicy(), RiskSignals(), NOW)
    busy = assess_risk(
        request(),
        paid(10_000, days_ago=200),
        eur(2_000),
        RefundPolicy(),
        RiskSignals(customer_requests_30d=4, customer_orders_90d=3, payment_requests=1),
        NOW,
    )
    assert {r.code for r in calm.reasons} == {"amount"}
    assert {r.code for r in busy.reasons} == {
        "amount",
        "customer_velocity",
        "serial_returner",
        "payment_velocity",
        "old_purchase",
    }
    assert busy.score == calm.score + 30 + 15 + 10 + 15
    assert (calm.requires_review, busy.requires_review) == (False, True)  # 80 >= the score threshold
    fresh = assess_risk(
        request(), paid(10_000, days_ago=0.01), eur(2_000), RefundPolicy(), RiskSignals(), NOW
    )
    assert "instant_refund" in {r.code for r in fresh.reasons}


def test_policy_decides_review_auto_approval_and_four_eyes() -> None:
    policy = RefundPolicy(
        version="v2",
        auto_approve_below_major=50,
        always_review_reasons=("fraud_claim",),
        four_eyes_above_major=500,
    )
    busy = RiskSignals(customer_requests_30d=9, customer_orders_90d=9, payment_requests=9)
    small_but_busy = assess_risk(request(), paid(100_000), eur(4_000), policy, busy, NOW)
    assert (small_but_busy.requires_review, small_but_busy.policy_version) == (False, "v2")
    claimed = assess_risk(request("fraud_claim"), paid(100_000), eur(100), policy, RiskSignals(), NOW)
    assert (claimed.requires_review, claimed.approvals_needed) == (True, 1)
    large = assess_risk(request(), paid(100_000), eur(60_000), policy, RiskSignals(), NOW)
    assert (large.requires_review, large.approvals_needed) == (True, 2)


# velocity from the database ----------------------------------------------------------------------


def test_velocity_counts_earlier_requests_of_the_customer_and_the_payment(db: Database) -> None:
    customer = unique("cus")
    now = datetime.now(UTC)

    def measure(order: str, payment: str = "pi_v", at: datetime = now) -> RiskSignals:
        asked = request(customer=customer, order=order).model_copy(update={"payment_reference": payment})
        with db.transaction() as session:
            return velocity.record_and_measure(session, asked, at)

    assert measure("o0", "pi_old", now - timedelta(days=40)) == RiskSignals()
    # 40 days ago is outside the 30-day velocity but inside the 90-day order count
    assert measure("o1") == RiskSignals(customer_orders_90d=1)
    assert measure("o1") == RiskSignals(customer_requests_30d=1, customer_orders_90d=1, payment_requests=1)
    assert measure("o3", "pi_third") == RiskSignals(customer_requests_30d=2, customer_orders_90d=2)
    card = f"fp-{customer}"
    counts = []
    for _ in range(2):  # two strangers, two payments, one card
        with db.transaction() as session:
            stranger = request(customer=unique("cus"), order=unique("o")).model_copy(
                update={"payment_reference": unique("pi")}
            )
            counts.append(velocity.record_and_measure(session, stranger, now, card).card_requests_30d)
    assert counts == [0, 1]


async def test_a_customer_asking_again_is_scored_with_the_reason(
    stack: Stack, sandbox: SandboxControl
) -> None:
    customer = unique("cus")
    first, second = (sandbox.seed_stripe_payment(amount=5_000, currency="EUR") for _ in range(2))
    await refund_through_pipeline(stack, first, amount=500, customer_id=customer)
    request_id = unique("again")
    await submit(stack, refund_body(request_id, second, amount=500, customer_id=customer))
    view = await wait_for_status(stack, request_id, FINAL)
    velocity_reason = next(r for r in view["risk"]["reasons"] if r["code"] == "customer_velocity")
    assert velocity_reason["detail"].startswith("1 earlier refund request")
    assert view["risk"]["policy_version"] == "builtin"


async def test_the_same_card_across_customers_is_scored(stack: Stack, sandbox: SandboxControl) -> None:
    """Stripe gives each card a fingerprint: two customers refunding to one card raise the score."""
    card = unique("fp")
    first, second = (
        sandbox.seed_stripe_payment(amount=5_000, currency="EUR", metadata={"card": card}) for _ in range(2)
    )
    await refund_through_pipeline(stack, first, amount=500, customer_id=unique("cus"))
    request_id = unique("card")
    await submit(stack, refund_body(request_id, second, amount=500, customer_id=unique("cus")))
    view = await wait_for_status(stack, request_id, FINAL)
    codes = {r["code"] for r in view["risk"]["reasons"]}
    assert "card_velocity" in codes and "customer_velocity" not in codes


@pytest.mark.parametrize(
    ("seconds", "said"),
    [(20, "paid less than a minute ago"), (90, "paid 1 minute ago"), (30 * 60, "paid 30 minutes ago")],
)
def test_an_instant_refund_says_how_long_ago_in_words(seconds: int, said: str) -> None:
    """Before: "paid 1 minutes ago", "paid 0 minutes ago"."""
    payment = paid(10_000, days_ago=seconds / 86_400)
    fresh = assess_risk(request(), payment, eur(2_000), RefundPolicy(), RiskSignals(), NOW)
    [instant] = [reason for reason in fresh.reasons if reason.code == "instant_refund"]
    assert instant.detail == said
