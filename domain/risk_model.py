"""A risk model learned from the merchant's own review outcomes, scored beside the rules.

A logistic regression over a few numeric features, stored as JSON (never pickled): standardisation
means and scales, coefficients and intercept as decimal strings. Scoring is exact `Decimal` arithmetic,
so the workflow computes it deterministically from the model it was started with.
"""

from __future__ import annotations

from decimal import Decimal, localcontext

from pydantic import BaseModel, ConfigDict

FEATURES = (
    "rule_score",
    "amount_major",
    "share_of_capture_pct",
    "customer_requests_30d",
    "customer_orders_90d",
    "payment_requests",
    "days_since_purchase",
    "anonymous",
)


class RiskModel(BaseModel):
    model_config = ConfigDict(frozen=True)

    version: str
    features: tuple[str, ...] = FEATURES
    means: tuple[Decimal, ...]
    scales: tuple[Decimal, ...]
    coefficients: tuple[Decimal, ...]
    intercept: Decimal
    metrics: dict[str, str] = {}  # quality on held-out decisions, as the training reported it


def rejection_percent(model: RiskModel, features: dict[str, Decimal]) -> int:
    """The model's estimate, 0-100, that a reviewer would reject this refund."""
    with localcontext() as context:
        context.prec = 28
        logit = model.intercept
        for name, mean, scale, weight in zip(
            model.features, model.means, model.scales, model.coefficients, strict=True
        ):
            logit += weight * (features[name] - mean) / (scale or Decimal(1))
        logit = max(min(logit, Decimal(40)), Decimal(-40))  # exp() stays finite
        estimate = Decimal(1) / (Decimal(1) + (-logit).exp())
        return int((estimate * 100).to_integral_value())
