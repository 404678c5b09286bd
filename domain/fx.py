"""Currency differences: a refund paid from a balance in another currency than the payment's.

The capture settled at one rate; the refund settles at the day's rate. What the refund would have cost
at the capture's rate is what the sale brought in; the rest is an FX gain or loss, booked on its own
account instead of vanishing. Integer minor units throughout; the rate is the capture's own ratio.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from domain.money import Money


class FxFacts(BaseModel):
    """What the PSP reported in the merchant's settlement currency."""

    model_config = ConfigDict(frozen=True)

    captured: Money  # the capture, in the payment's currency
    captured_settled: Money  # the capture, as it settled
    refund_settled: Money  # the refund, as it settled


def at_capture_rate(refund: Money, facts: FxFacts) -> int:
    """`refund` converted at the capture's rate, rounded half to even, in settlement minor units."""
    if refund.currency != facts.captured.currency or facts.captured.value <= 0:
        raise ValueError("the refund and the capture must share a currency and the capture be positive")
    quotient, remainder = divmod(refund.value * facts.captured_settled.value, facts.captured.value)
    twice = 2 * remainder
    if twice > facts.captured.value or (twice == facts.captured.value and quotient % 2 == 1):
        quotient += 1
    return quotient


def fx_difference(refund: Money, facts: FxFacts) -> int:
    """Positive: the refund cost more than the sale brought in (a loss); negative: a gain."""
    return facts.refund_settled.value - at_capture_rate(refund, facts)
