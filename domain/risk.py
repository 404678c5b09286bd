"""A first rule-based risk score: every point has a reason a reviewer can read."""

from __future__ import annotations

from domain.contracts import PaymentRecord, RefundPolicy, RiskAssessment, RiskReason
from domain.money import Money, format_minor, major_to_minor
from domain.requests import RefundRequest


def assess_risk(
    request: RefundRequest, payment: PaymentRecord, amount: Money, policy: RefundPolicy
) -> RiskAssessment:
    reasons: list[RiskReason] = []
    threshold = major_to_minor(policy.review_threshold_major, amount.currency)
    share = amount.value * 100 // max(threshold, 1)
    reasons.append(
        RiskReason(
            code="amount",
            points=min(share // 2, 50),
            detail=f"{amount} is {share}% of the review threshold "
            f"{format_minor(threshold, amount.currency)} {amount.currency}",
        )
    )
    if payment.amount_captured and amount.value == payment.amount_captured:
        reasons.append(RiskReason(code="full_refund", points=10, detail="refunds the whole payment"))
    if request.customer_id is None:
        reasons.append(RiskReason(code="anonymous_customer", points=5, detail="no customer id"))
    over_threshold = amount.value >= threshold
    if over_threshold:
        reasons.append(
            RiskReason(
                code="review_threshold",
                points=40,
                detail="at or above the amount that policy sends to human review",
            )
        )
    score = min(sum(reason.points for reason in reasons), 100)
    return RiskAssessment(score=score, reasons=reasons, requires_review=over_threshold)
