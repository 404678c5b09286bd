"""Status enums and stable error codes shared by the workflow, the API and the CLI."""

from enum import StrEnum


class Provider(StrEnum):
    STRIPE = "stripe"
    ADYEN = "adyen"
    PAYPAL = "paypal"


class RefundStatus(StrEnum):
    RECEIVED = "received"
    VALIDATING = "validating"
    SCORING = "scoring"
    AWAITING_REVIEW = "awaiting_review"
    REFUNDING = "refunding"
    AWAITING_CONFIRMATION = "awaiting_confirmation"
    NEEDS_ATTENTION = "needs_attention"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


class RefundMethod(StrEnum):
    REFUND = "refund"
    VOID = "void"


class PaymentState(StrEnum):
    """What the PSP says about the payment we are asked to refund."""

    CAPTURED = "captured"
    AUTHORIZED = "authorized"  # not captured yet: cancel instead of refund
    CANCELED = "canceled"
    NOT_FOUND = "not_found"
    OTHER = "other"


class PspRefundStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class ErrorCode(StrEnum):
    """Stable, machine-readable codes. Callers and dashboards depend on these strings."""

    # request intake
    SIGNATURE_MISSING = "signature_missing"
    SIGNATURE_INVALID = "signature_invalid"
    SIGNATURE_EXPIRED = "signature_expired"
    INVALID_JSON = "invalid_json"
    INVALID_REQUEST = "invalid_request"
    REQUEST_CONFLICT = "request_conflict"
    NOT_FOUND = "not_found"
    UNAUTHORIZED = "unauthorized"
    REASON_NOT_ALLOWED = "reason_not_allowed"  # an API client asked for a reason outside its scope
    MERCHANT_NOT_ALLOWED = "merchant_not_allowed"  # an API client named a merchant not its own
    INVALID_STATE = "invalid_state"
    ALREADY_FINISHED = "already_finished"  # steering a refund whose workflow has completed
    TEMPORAL_UNAVAILABLE = "temporal_unavailable"
    DATABASE_UNAVAILABLE = "database_unavailable"
    SERVICE_UNAVAILABLE = "service_unavailable"  # the refund service, to a process in front of it (MCP)
    REQUEST_TOO_LARGE = "request_too_large"
    # validation against the PSP
    PAYMENT_NOT_FOUND = "payment_not_found"
    PAYMENT_NOT_REFUNDABLE = "payment_not_refundable"
    PAYMENT_DISPUTED = "payment_disputed"
    CURRENCY_MISMATCH = "currency_mismatch"
    INVALID_AMOUNT = "invalid_amount"
    PROVIDER_NOT_CONFIGURED = "provider_not_configured"
    NOT_SUPPORTED = "not_supported"
    # PSP outcomes (docs/architecture.md's table)
    PSP_UNAVAILABLE = "psp_unavailable"
    PSP_RATE_LIMITED = "psp_rate_limited"
    PSP_BUSY = "psp_busy"
    REFUND_EXCEEDS_CAPTURE = "refund_exceeds_capture"
    ALREADY_REFUNDED = "already_refunded"
    PSP_DECLINED = "psp_declined"
    PSP_AUTH_FAILED = "psp_auth_failed"
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"
    PSP_KEY_EXHAUSTED = "psp_key_exhausted"
    # the PSP replays a stored failure under this idempotency key: search, then use the next key
    PSP_KEY_POISONED = "psp_key_poisoned"
    CONFIRMATION_TIMEOUT = "confirmation_timeout"
    STEP_FAILED = "step_failed"  # a step failed for good without a code of its own: ops retry it
    # review
    REVIEW_REJECTED = "review_rejected"
    REVIEW_TIMEOUT = "review_timeout"
