"""Early fraud warnings: the card network's word that a payment was fraudulent, before the chargeback.

Refunding the payment now costs the amount; the chargeback later costs the amount, a fee and a mark
against the merchant's dispute rate. The policy file (`[early_fraud_warnings]`) says what to do with
one; `decide` applies it, purely, to what the service knows when the warning arrives.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from domain.contracts import FraudWarningPolicy, RefundPolicy, RiskReason
from domain.money import Money, format_minor
from domain.requests import REFUND_ID_LENGTH, REQUEST_ID_PATTERN
from domain.risk import _converter

REASON_CODE = "early_fraud_warning"  # the refund's reason_code and the review hold's code
AUDIT_STEP = "early_fraud_warning"  # the audit row of each warning taken, with what policy made of it

# The request ids of refunds made on a PSP's warning: reserved, so no merchant can take one first
# and leave the warning finding "its" refund already started (workers/service/refund_requests.py).
WARNING_ID_PREFIX = "efw-"


class FraudWarning(BaseModel):
    """A verified early fraud warning, whatever the PSP: Stripe's `early_fraud_warning`, Adyen's
    NOTIFICATION_OF_FRAUD."""

    model_config = ConfigDict(frozen=True)

    provider: str
    warning_id: str  # Stripe's `issfr_...`; Adyen's pspReference of the notification
    payment_reference: str  # what a refund request names: Stripe's PaymentIntent (else charge)
    actionable: bool = True  # Stripe: False once the charge is refunded or disputed
    fraud_type: str = ""
    amount: Money | None = None  # where the PSP says (Adyen), the payment's amount

    @property
    def actor(self) -> str:
        """Who asks for the refund (`RefundWorkflowInput.requested_by`)."""
        return f"psp:{self.provider}:{self.warning_id}"


class Action(StrEnum):
    REFUND = "refund"  # refund the rest of the payment now
    REVIEW = "review"  # start the refund, held for a human whatever its score
    RECORD = "record"  # start nothing: audit the warning and count it


@dataclass(frozen=True)
class Decision:
    action: Action
    why: str

    def hold(self) -> tuple[RiskReason, ...]:
        """The reason intake holds the refund for a human, for `REVIEW`."""
        if self.action is not Action.REVIEW:
            return ()
        return (RiskReason(code=REASON_CODE, points=0, detail=self.why),)


def decide(policy: RefundPolicy, warning: FraudWarning, refundable: Money | None, disputed: bool) -> Decision:
    """What the merchant's policy does with `warning`, given what is still refundable on the payment
    (None: unknown) and whether a dispute holds the payment already."""
    rules: FraudWarningPolicy = policy.early_fraud_warnings
    if rules.mode == "record":
        return Decision(Action.RECORD, "policy records early fraud warnings only")
    if not warning.actionable:
        return Decision(Action.RECORD, "the PSP says the warning needs no action (refunded or disputed)")
    if disputed:
        return Decision(Action.RECORD, "a dispute is open on the payment: the dispute decides")
    if refundable is not None and refundable.value == 0:
        return Decision(Action.RECORD, "nothing is left to refund on the payment")
    if rules.mode == "review":
        return Decision(Action.REVIEW, f"early fraud warning {warning.warning_id}: policy reviews every one")
    if warning.fraud_type and warning.fraud_type in rules.review_fraud_types:
        return Decision(
            Action.REVIEW, f"early fraud warning {warning.warning_id}: policy reviews {warning.fraud_type!r}"
        )
    if refundable is None:
        return Decision(
            Action.REVIEW, f"early fraud warning {warning.warning_id}: the payment's amount is unknown"
        )
    in_currency = _converter(policy, refundable.currency)
    if in_currency is None:
        return Decision(
            Action.REVIEW,
            f"early fraud warning {warning.warning_id}: the policy sets no amounts in {refundable.currency}",
        )
    limit = in_currency(rules.refund_up_to_major)
    if refundable.value > limit:
        return Decision(
            Action.REVIEW,
            f"early fraud warning {warning.warning_id}: {refundable} is above the "
            f"{format_minor(limit, refundable.currency)} {refundable.currency} refunded automatically",
        )
    return Decision(Action.REFUND, f"early fraud warning {warning.warning_id}: {refundable} refunded")


def request_id_for(provider: str, warning_id: str, owner: str | None = None) -> str:
    """The refund's request id, the same for every delivery of the warning (so it refunds once):
    `efw-<provider>-<warning id>`, hashed when the PSP's id does not fit a request id."""
    plain = f"{WARNING_ID_PREFIX}{provider}-{warning_id}"
    room = REFUND_ID_LENGTH - (len(owner) + 1 if owner else 0)
    if len(plain) <= room and re.fullmatch(REQUEST_ID_PATTERN, plain):
        return plain
    return f"{WARNING_ID_PREFIX}{provider}-sha-{hashlib.sha256(warning_id.encode()).hexdigest()[:32]}"
