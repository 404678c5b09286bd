"""Data that crosses the workflow boundary: one typed input and output per workflow and activity.

Fields may be added with defaults; never renamed or removed while workflows run on them.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from domain.allocation import Allocation, ShippingPolicy
from domain.fx import FxFacts
from domain.money import Money
from domain.requests import RefundRequest
from domain.returns import DEFAULT_NO_RETURN_REASONS, GoodsReceipt, ReturnsState
from domain.risk_model import RiskModel
from domain.status import (
    ErrorCode,
    PaymentState,
    Provider,
    PspRefundStatus,
    RefundMethod,
    RefundStatus,
)


class _Contract(BaseModel):
    model_config = ConfigDict(frozen=True)


class SignatureEvidence(_Contract):
    """What the starter saw: the raw signed body and its header, so the worker can re-verify."""

    raw_body: str
    signature_header: str
    received_at: datetime


class FraudWarningPolicy(_Contract):
    """What an early fraud warning does (`[early_fraud_warnings]`; `domain/fraud_warnings.py`)."""

    mode: str = "record"  # "refund" | "review" | "record": the built-in default starts nothing
    refund_up_to_major: int = 0  # "refund": at most this much refunded without a human
    review_fraud_types: tuple[str, ...] = ()  # these always go to a human
    # what a chargeback would cost besides its amount, minor units per currency; only reports use it
    # (`domain/warning_savings.py`). Empty: not set, for every currency
    chargeback_fees: dict[str, int] = Field(default_factory=dict)


class RefundPolicy(_Contract):
    """Policy captured when the refund is started, so a running workflow never changes its rules."""

    version: str = "builtin"  # the policy file's version, recorded with every decision
    review_threshold_major: int = 1_000
    review_score_threshold: int = 60
    auto_approve_below_major: int = 0
    always_review_reasons: tuple[str, ...] = ()
    four_eyes_above_major: int | None = None
    # minor units of each currency one major unit of the amounts above is worth; a currency missing
    # from a non-empty table is always reviewed. Empty (refunds started before it): each currency's
    # own major unit
    review_currencies: dict[str, int] = Field(default_factory=dict)
    review_escalate_after_seconds: int = 24 * 3600
    review_decide_after_seconds: int = 72 * 3600
    on_review_deadline: str = "reject"  # or "approve"
    psp_call_timeout_seconds: int = 30
    confirmation_poll_seconds: int = 60
    confirmation_deadline_seconds: int = 7 * 24 * 3600
    max_key_generations: int = 5
    shipping_policy: ShippingPolicy = ShippingPolicy.FULL_RETURN
    no_return_reasons: tuple[str, ...] = DEFAULT_NO_RETURN_REASONS
    returns_deadline_seconds: int = 90 * 24 * 3600
    # a Temporal UI decision without a proof counts (as one approval at most, never a second one);
    # never in production unless configured
    unverified_ui_reviews: bool = False
    early_fraud_warnings: FraudWarningPolicy = FraudWarningPolicy()


class RefundWorkflowInput(_Contract):
    request: RefundRequest
    evidence: SignatureEvidence
    policy: RefundPolicy = RefundPolicy()
    risk_model: RiskModel | None = None  # the merchant's trained model, when there is one
    merchant_id: str | None = None  # None: the installation's default merchant
    # the service's public keys: a review decision counts only with a proof one of them verifies
    # (domain/identity.py); empty for refunds started before decisions were signed
    review_keys: tuple[str, ...] = ()
    # who asked, when not the merchant's platform with its signed request: a client acting for the
    # merchant (`client:<name>`) or a PSP's early fraud warning (`psp:<provider>:<warning id>`)
    requested_by: str | None = None
    # reasons a human decides this refund whatever its score, given at intake (a client over its
    # limits, a fraud warning above the policy's amount); empty for every refund started before
    held_for: tuple[RiskReason, ...] = ()


class AuditEvent(_Contract):
    """One audit row. Steps computed in workflow code ride along with the next activity.

    `key` is unique per refund, so writing the same event twice (an activity retry) is a no-op.
    """

    key: str
    step: str
    actor: str
    reason_code: str | None = None
    status_before: RefundStatus | None = None
    status_after: RefundStatus | None = None
    psp_request_id: str | None = None
    psp_response_ms: int | None = None
    detail: dict[str, str] = Field(default_factory=dict)
    at: datetime


class PaymentRecord(_Contract):
    """The PSP's own view of the payment, PSP-agnostic."""

    provider: Provider
    reference: str
    state: PaymentState
    currency: str = ""
    amount_captured: int = 0
    amount_authorized: int = 0
    amount_refunded: int = 0
    # the capture as it settled in the merchant's settlement currency, when that is another one
    settlement: Money | None = None
    created_at: datetime | None = None  # when the customer paid, where the PSP says
    card_fingerprint: str | None = None  # the same card across payments, where the PSP gives one
    # The PSP's one name for this payment where it has two (Stripe: a charge's PaymentIntent), so
    # refunds naming it either way meet in one over-refund guard; None: `reference` is the one
    same_payment_as: str | None = None

    @property
    def guard_reference(self) -> str:
        """The reference the over-refund guard keys this payment by."""
        return self.same_payment_as or self.reference

    @property
    def refundable(self) -> int:
        return max(self.amount_captured - self.amount_refunded, 0)


class ValidateInput(_Contract):
    request: RefundRequest
    evidence: SignatureEvidence
    merchant_id: str | None = None  # whose secret signed it; None: the default merchant
    audit: list[AuditEvent] = Field(default_factory=list)
    round: int = 1  # validation runs again after ops release a hold; each round is audited
    requested_by: str | None = None  # who asked, when not the merchant's platform: audited as the actor


class RiskSignals(_Contract):
    """What our own database knows of the customer's and the payment's refund history."""

    customer_requests_30d: int = 0  # earlier refund requests by this customer in 30 days
    customer_orders_90d: int = 0  # distinct orders of this customer refunded in 90 days
    payment_requests: int = 0  # earlier refund requests against this payment
    card_requests_30d: int = 0  # earlier refund requests on other payments by the same card, 30 days


class Validation(_Contract):
    """Outcome of checking the request against its signature and the PSP's record."""

    payment: PaymentRecord | None = None
    signals: RiskSignals = RiskSignals()
    error: ErrorCode | None = None
    message: str = ""
    audit: list[AuditEvent] = Field(default_factory=list)


class RiskReason(_Contract):
    code: str
    points: int
    detail: str


class RiskAssessment(_Contract):
    score: int
    reasons: list[RiskReason]
    requires_review: bool
    policy_version: str = "builtin"
    approvals_needed: int = 1  # two above the four-eyes amount
    features: dict[str, str] = Field(
        default_factory=dict,
        description="The risk model's inputs, kept for training: each an exact decimal written as a "
        'string ("12.50", "3"), never a float',
    )


class ReviewDecision(_Contract):
    approved: bool
    reviewer: str
    reason: str = ""
    decided_at: datetime


class ReviewInput(_Contract):
    """Approve or reject: an operator identity is required, a reason when rejecting."""

    reviewer: str = Field(min_length=1, max_length=128)
    reason: str = Field(default="", max_length=1000)
    # the service's signature(s) of this decision, one per signing key it holds while rotating
    proof: str | None = Field(default=None, max_length=500)


class ReserveInput(_Contract):
    request_id: str
    merchant_id: str | None = None
    payment: PaymentRecord
    amount: Money
    allocation: Allocation | None = None  # None: the whole amount is goods
    audit: list[AuditEvent] = Field(default_factory=list)


class Reservation(_Contract):
    granted: bool
    available: int = 0
    refusal: ErrorCode | None = None
    message: str = ""  # for a refusal ops can lift (a dispute hold): what to do


class PspRefundCall(_Contract):
    """One attempt at the PSP; the idempotency key is derived from request id and generation."""

    request_id: str
    payment: PaymentRecord
    amount: Money
    reason_code: str
    key_generation: int = 1
    method: RefundMethod = RefundMethod.REFUND
    merchant_id: str | None = None  # whose PSP account; None: the default merchant
    search_first: bool = False  # ops retried a call whose outcome is unknown: adopt before acting


class RefundResult(_Contract):
    """The PSP's answer, whatever the PSP. A decline is a result, not an exception."""

    psp_refund_id: str | None
    status: PspRefundStatus
    amount: Money
    method: RefundMethod = RefundMethod.REFUND
    failure_code: ErrorCode | None = None
    failure_message: str = ""
    psp_request_id: str | None = None
    psp_response_ms: int | None = None
    adopted: bool = False
    # the refund as it settled in the merchant's settlement currency, when that is another one
    settlement: Money | None = None
    # the payment the PSP's own record puts the refund on, where its answer names one
    payment_reference: str | None = None
    # the processing fee the PSP gave back with this refund, in the currency its balance moved in
    fee_returned: Money | None = None


class RefundLookup(_Contract):
    provider: Provider
    psp_refund_id: str
    request_id: str
    merchant_id: str | None = None


class PspRefundUpdate(_Contract):
    """A PSP's asynchronous word on a refund (webhook signal or poll)."""

    psp_refund_id: str
    status: PspRefundStatus
    failure_code: ErrorCode | None = None
    failure_message: str = ""
    psp_event_id: str | None = None
    amount: Money | None = None  # carried for refunds we did not make (dashboard refunds)
    # the service's signature over this update for the workflow it addresses (domain/outcome_proofs.py);
    # None from a poll (the PSP's own answer) or from anyone who went around the service
    proof: str | None = Field(default=None, max_length=1024)


class OutcomeCheck(_Contract):
    """A PSP's word on a refund, to be proven and read back at the PSP before it moves the books.

    `request_id` is ours when the refund is ours (a dashboard refund has none). `verify_proof`: check
    the service's proof in the activity (the late-failure and external-refund workflows, whose input
    anyone with Temporal access could write; the refund's own workflow checks it in workflow code)."""

    provider: Provider
    update: PspRefundUpdate
    request_id: str | None = None
    payment_reference: str = ""
    merchant_id: str | None = None
    verify_proof: bool = True


class OutcomeVerdict(_Contract):
    """`update` is the PSP's own word where it can be read back (`read_back`), else the proven
    update; None when the update was not proven (audited, changes nothing). `denied`: the reporting
    account's PSP itself answered that it holds no such refund (of that payment, for that request),
    so no later word from that account can book it."""

    proven: bool
    update: PspRefundUpdate | None = None
    read_back: bool = False
    denied: bool = False


class ExternalRefundInput(_Contract):
    """A refund made outside the product (the PSP's dashboard): finance must still see it."""

    provider: Provider
    payment_reference: str
    psp_refund_id: str
    outcome: PspRefundUpdate | None = None  # set once the PSP's final word is in
    merchant_id: str | None = None  # whose PSP account made it; None: the default merchant


class RetryInput(_Contract):
    operator: str = Field(min_length=1, max_length=128)


class VoidApprovalInput(_Contract):
    """Ops take back one person's approvals of a refund still awaiting review (a reviewer whose token
    was revoked, say): they no longer count towards its approvals (`refunds void-approval`)."""

    reviewer: str = Field(min_length=1, max_length=128)
    operator: str = Field(min_length=1, max_length=128)
    reason: str = Field(default="", max_length=1000)


class CancelInput(_Contract):
    """Ops end a refund that waits for them before any money could have moved (`refunds cancel`)."""

    operator: str = Field(min_length=1, max_length=128)
    reason: str = Field(min_length=1, max_length=1000)


class FinishInput(_Contract):
    """The terminal step: release or commit the reservation, post the ledger, write the audit."""

    request_id: str
    provider: Provider
    payment_reference: str
    order_id: str
    status: RefundStatus
    merchant_id: str | None = None
    amount: Money | None
    method: RefundMethod = RefundMethod.REFUND
    psp_refund_id: str | None = None
    failure_code: ErrorCode | None = None
    allocation: Allocation | None = None
    fx: FxFacts | None = None  # set when the refund settled in another currency than the payment
    fee_returned: Money | None = None  # the PSP's fee it gave back with the refund (RefundResult)
    audit: list[AuditEvent] = Field(default_factory=list)
    request_digest: str | None = None  # the settled row answers a resent request after retention
    requested_by: str | None = None  # who asked, when not the merchant's platform (RefundWorkflowInput)


class AuditRows(_Contract):
    """Audit rows of steps taken in workflow code, written as they happen (while a refund waits)."""

    request_id: str
    payment_reference: str
    audit: list[AuditEvent] = Field(default_factory=list)


class NotifyInput(_Contract):
    """Tell ops something needs them (an escalated review), through the configured hook."""

    request_id: str
    payment_reference: str
    event: str
    message: str
    detail: dict[str, str] = Field(default_factory=dict)
    audit: list[AuditEvent] = Field(default_factory=list)


class RestockInput(_Contract):
    """Restock a receipt's sellable units, once per (refund, receipt, SKU)."""

    request_id: str
    payment_reference: str
    receipt: GoodsReceipt | None
    merchant_id: str | None = None  # None: only the audit notes are written
    audit: list[AuditEvent] = Field(default_factory=list)


class RestockResult(_Contract):
    restocked: dict[str, int] = Field(default_factory=dict)


class LateFailureInput(_Contract):
    """The PSP failed a refund after reporting it succeeded (Stripe refund.failed, Adyen
    REFUND_FAILED after REFUND): the books must be reversed and ops told."""

    provider: Provider
    request_id: str
    update: PspRefundUpdate
    merchant_id: str | None = None  # whose PSP account reported it; None: the default merchant
    audit: list[AuditEvent] = Field(default_factory=list)
    # a dashboard refund's payment: its failure is recorded even before its success was booked
    payment_reference: str = ""


class RefundState(_Contract):
    """What `status`, the API and the Temporal UI show of one refund."""

    request_id: str
    provider: Provider
    payment_reference: str
    order_id: str
    status: RefundStatus
    merchant_id: str | None = None  # None: the installation's default merchant
    requested_by: str | None = None  # None: the merchant's platform (see RefundWorkflowInput)
    method: RefundMethod = RefundMethod.REFUND
    requested_amount: Money | None = None
    amount: Money | None = None
    allocation: Allocation | None = None
    returns: ReturnsState = ReturnsState()
    psp_refund_id: str | None = None
    risk: RiskAssessment | None = None
    review: ReviewDecision | None = None
    approvals: list[ReviewDecision] = Field(default_factory=list)  # four eyes: approvals so far
    awaiting_review_since: datetime | None = None
    review_escalated: bool = False
    failure_code: ErrorCode | None = None
    failure_message: str = ""
    key_generation: int = 1
