"""The risk score: rules whose every point has a reason a reviewer can read, and the policy's verdict.

Signals come from the request, the PSP's record of the payment and our own database (velocity), so
the score is the same on every replay: the workflow computes it from recorded activity results.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal

from domain.contracts import PaymentRecord, RefundPolicy, RiskAssessment, RiskReason, RiskSignals
from domain.money import Money, currency_exponent, format_minor, major_to_minor
from domain.requests import RefundRequest
from domain.risk_model import RiskModel, rejection_percent

MODEL_POINTS = 30  # a certain rejection by the model adds this much to the rules' score


def _amount_reasons(amount: Money, payment: PaymentRecord, threshold: int | None) -> list[RiskReason]:
    reasons = []
    if threshold is not None:  # None: the policy sets no amounts in this currency
        share_of_threshold = amount.value * 100 // max(threshold, 1)
        reasons.append(
            RiskReason(
                code="amount",
                points=min(share_of_threshold // 2, 50),
                detail=f"{amount} is {share_of_threshold}% of the review threshold "
                f"{format_minor(threshold, amount.currency)} {amount.currency}",
            )
        )
    if payment.amount_captured and amount.value == payment.amount_captured:
        reasons.append(RiskReason(code="full_refund", points=10, detail="refunds the whole payment"))
    elif payment.amount_captured and amount.value * 2 > payment.amount_captured:
        share = amount.value * 100 // payment.amount_captured
        reasons.append(RiskReason(code="most_of_capture", points=5, detail=f"{share}% of the capture"))
    return reasons


def _requests(count: int) -> str:
    return "1 earlier refund request" if count == 1 else f"{count} earlier refund requests"


def _velocity_reasons(signals: RiskSignals) -> list[RiskReason]:
    """Ten points per earlier request, capped; three or more refunded orders make a serial returner."""
    counted = [
        ("customer_velocity", signals.customer_requests_30d, 30, "by this customer in 30 days"),
        ("card_velocity", signals.card_requests_30d, 30, "on the same card in 30 days"),
        ("payment_velocity", signals.payment_requests, 20, "against this payment"),
    ]
    reasons = [
        RiskReason(code=code, points=min(count * 10, cap), detail=f"{_requests(count)} {where}")
        for code, count, cap, where in counted
        if count
    ]
    if signals.customer_orders_90d >= 3:
        reasons.append(
            RiskReason(
                code="serial_returner",
                points=15,
                detail=f"{signals.customer_orders_90d} of this customer's orders refunded in 90 days",
            )
        )
    return reasons


def _timing_reasons(payment: PaymentRecord, now: datetime) -> list[RiskReason]:
    if payment.created_at is None:
        return []
    age = now - payment.created_at
    if age > timedelta(days=90):
        return [RiskReason(code="old_purchase", points=15, detail=f"paid {age.days} days ago")]  # > 90
    if age < timedelta(hours=1):
        minutes = int(age.total_seconds()) // 60
        when = "less than a minute" if minutes < 1 else "1 minute" if minutes == 1 else f"{minutes} minutes"
        return [RiskReason(code="instant_refund", points=10, detail=f"paid {when} ago")]
    return []


def features_of(
    rule_score: int,
    amount: Money,
    payment: PaymentRecord,
    signals: RiskSignals,
    anonymous: bool,
    now: datetime,
) -> dict[str, Decimal]:
    """The model's inputs for one refund; the same function feeds training and scoring."""
    captured = payment.amount_captured or payment.amount_authorized
    days = (now - payment.created_at).days if payment.created_at is not None else -1
    return {
        "rule_score": Decimal(rule_score),
        "amount_major": Decimal(amount.value).scaleb(-currency_exponent(amount.currency)),
        "share_of_capture_pct": Decimal(amount.value * 100 // captured) if captured else Decimal(100),
        "customer_requests_30d": Decimal(signals.customer_requests_30d),
        "customer_orders_90d": Decimal(signals.customer_orders_90d),
        "payment_requests": Decimal(signals.payment_requests),
        "days_since_purchase": Decimal(days),
        "anonymous": Decimal(int(anonymous)),
    }


def _converter(policy: RefundPolicy, currency: str) -> Callable[[int], int] | None:
    """The policy's major-unit amounts in `currency`'s minor units: through the policy's table when
    it has one, else each currency's own major unit; None for a currency the table does not list."""
    if not policy.review_currencies:
        return lambda major: major_to_minor(major, currency)
    rate = policy.review_currencies.get(currency)
    if rate is None:
        return None
    return lambda major: major * rate


def assess_risk(
    request: RefundRequest,
    payment: PaymentRecord,
    amount: Money,
    policy: RefundPolicy,
    signals: RiskSignals,
    now: datetime,
    model: RiskModel | None = None,
) -> RiskAssessment:
    """The score (0-100) with its reasons, and whether a human must decide, per `policy`; a model
    trained on the merchant's decisions adds its estimate as one more reason."""
    in_currency = _converter(policy, amount.currency)
    threshold = in_currency(policy.review_threshold_major) if in_currency else None
    reasons = [
        *_amount_reasons(amount, payment, threshold),
        *_velocity_reasons(signals),
        *_timing_reasons(payment, now),
    ]
    if request.customer_id is None:
        reasons.append(RiskReason(code="anonymous_customer", points=5, detail="no customer id"))
    always = request.reason_code in policy.always_review_reasons
    if always:
        reasons.append(
            RiskReason(code="reason_code", points=20, detail=f"policy reviews every {request.reason_code!r}")
        )
    unlisted = in_currency is None
    if unlisted:
        reasons.append(
            RiskReason(
                code="unlisted_currency",
                points=40,
                detail=f"the policy sets no amounts in {amount.currency}: a human decides",
            )
        )
    over_threshold = threshold is not None and amount.value >= threshold
    if over_threshold:
        reasons.append(
            RiskReason(
                code="review_threshold",
                points=40,
                detail="at or above the amount that policy sends to human review",
            )
        )
    rule_score = min(sum(reason.points for reason in reasons), 100)
    features = features_of(rule_score, amount, payment, signals, request.customer_id is None, now)
    if model is not None:
        percent = rejection_percent(model, features)
        reasons.append(
            RiskReason(
                code="model",
                points=percent * MODEL_POINTS // 100,
                detail=f"model {model.version} expects a rejection at {percent}%",
            )
        )
    score = min(sum(reason.points for reason in reasons), 100)
    small = in_currency is not None and amount.value < in_currency(policy.auto_approve_below_major)
    four_eyes = policy.four_eyes_above_major
    # an unlisted currency cannot be sized: where the policy wants four eyes at all, it gets them
    two_needed = four_eyes is not None and (in_currency is None or amount.value >= in_currency(four_eyes))
    risky = over_threshold or score >= policy.review_score_threshold
    return RiskAssessment(
        score=score,
        reasons=reasons,
        requires_review=always or unlisted or two_needed or (risky and not small),
        policy_version=policy.version,
        approvals_needed=2 if two_needed else 1,
        features={name: str(value) for name, value in features.items()},
    )


def held(risk: RiskAssessment, reasons: tuple[RiskReason, ...]) -> RiskAssessment:
    """`risk` with the reasons a human decides this refund whatever its score (given at intake)."""
    if not reasons:
        return risk
    everything = [*risk.reasons, *reasons]
    score = min(sum(reason.points for reason in everything), 100)
    return risk.model_copy(update={"reasons": everything, "score": score, "requires_review": True})
