"""The merchant's refund policy file (TOML): review thresholds, four eyes, deadlines, returns.

Parsed strictly: an unknown key, a wrong type or a missing version is a `PolicyError` naming the file
and the field, so a bad policy stops the product at start instead of deciding refunds wrongly.

    version = "2026-11-25.1"          # recorded with every decision

    [review]
    threshold_major = 1000            # at or above this many major units: a human decides
    score_threshold = 60              # or at or above this risk score
    auto_approve_below_major = 50     # below this, no review (unless the reason always needs one)
    always_review_reasons = ["fraud_claim"]
    four_eyes_above_major = 5000      # at or above: two different reviewers must approve
    escalate_after_hours = 24
    decide_after_hours = 72
    on_deadline = "reject"            # or "approve"

    [review.currencies]               # minor units of each currency worth one major unit of the
    EUR = 100                         # amounts above; a currency not listed is always reviewed
    JPY = 160
    KWD = 310

    [early_fraud_warnings]            # a PSP's early fraud warning (Stripe Radar, Adyen)
    mode = "refund"                   # refund | review | record (built in: record, nothing starts)
    refund_up_to_major = 200          # refunded without a human up to this; above: a human decides
    review_fraud_types = ["misc"]     # these always go to a human
    # what one chargeback costs besides its amount (the PSP's dispute fee), in major units of each
    # currency, written as strings: `refunds fraud-warnings` reports the fees the refunds avoided
    chargeback_fee = { EUR = "15.00", USD = "15.00" }

    [returns]
    shipping = "full_return"          # always | never | full_return
    no_return_reasons = ["damaged", "defective", "not_received", "vending_failure", "goodwill"]
    deadline_days = 90
"""

from __future__ import annotations

import tomllib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from domain.allocation import ShippingPolicy
from domain.currencies import REFUNDABLE_CURRENCIES
from domain.money import parse_major_text
from domain.returns import DEFAULT_NO_RETURN_REASONS


class PolicyError(ValueError):
    """A policy file that cannot be used; the message names the file and what is wrong."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReviewRules(_Strict):
    threshold_major: int = Field(default=1_000, ge=0)
    score_threshold: int = Field(default=60, ge=0, le=100)
    auto_approve_below_major: int = Field(default=0, ge=0)
    always_review_reasons: list[str] = []
    four_eyes_above_major: int | None = Field(default=None, ge=0)
    escalate_after_hours: int = Field(default=24, gt=0)
    decide_after_hours: int = Field(default=72, gt=0)
    on_deadline: Literal["reject", "approve"] = "reject"
    # minor units of each currency one major unit of the amounts above is worth (EUR = 100 when they
    # are euros); empty: every currency's own major unit, as before this table existed
    currencies: dict[str, int] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_currencies(self) -> ReviewRules:
        for code, rate in self.currencies.items():
            if code not in REFUNDABLE_CURRENCIES or rate <= 0:
                raise ValueError(f"currencies.{code}: an ISO 4217 code and a positive number of minor units")
        return self

    @model_validator(mode="after")
    def _escalate_before_deciding(self) -> ReviewRules:
        if self.escalate_after_hours >= self.decide_after_hours:
            raise ValueError("escalate_after_hours must be less than decide_after_hours")
        return self


class ReturnRules(_Strict):
    shipping: ShippingPolicy = ShippingPolicy.FULL_RETURN
    no_return_reasons: list[str] = list(DEFAULT_NO_RETURN_REASONS)
    deadline_days: int = Field(default=90, gt=0)


class EarlyFraudWarningRules(_Strict):
    mode: Literal["refund", "review", "record"] = "record"
    # in major units of the `[review.currencies]` table, like the review amounts
    refund_up_to_major: int = Field(default=0, ge=0)
    review_fraud_types: list[str] = []
    # a chargeback's fee per currency, major units as exact decimal strings. None built in: fees
    # differ by PSP, acquirer and contract, and a guessed one would report savings nobody made; a
    # currency without one is reported as "fee not set"
    chargeback_fee: dict[str, str] = Field(default_factory=dict)

    @field_validator("chargeback_fee", mode="before")
    @classmethod
    def _fees_are_strings(cls, fees: Any) -> Any:
        if isinstance(fees, dict):
            for code, fee in fees.items():
                if not isinstance(fee, str):
                    raise ValueError(
                        f'{code}: write the fee as a string, like "15.00" (a TOML number may be a float)'
                    )
        return fees

    @field_validator("chargeback_fee")
    @classmethod
    def _exact_fees(cls, fees: dict[str, str]) -> dict[str, str]:
        for code, fee in fees.items():
            if code not in REFUNDABLE_CURRENCIES:
                raise ValueError(f"{code}: not an ISO 4217 code")
            try:
                parse_major_text(fee, code)
            except ValueError as err:
                raise ValueError(f"{code}: {err}") from err
        return fees

    def chargeback_fees_minor(self) -> dict[str, int]:
        """The fees in minor units of their currencies (validated above)."""
        return {code: parse_major_text(fee, code) for code, fee in self.chargeback_fee.items()}


class PolicyFile(_Strict):
    version: str = Field(min_length=1, max_length=64)
    review: ReviewRules = ReviewRules()
    returns: ReturnRules = ReturnRules()
    early_fraud_warnings: EarlyFraudWarningRules = EarlyFraudWarningRules()


def parse_policy(text: str, source: str) -> PolicyFile:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise PolicyError(f"{source}: not valid TOML: {err}") from err
    try:
        return PolicyFile.model_validate(data)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in e['loc']) or '(file)'}: {e['msg']}" for e in err.errors()
        )
        raise PolicyError(f"{source}: {problems}") from err
