"""Names shared by the workflow, activities, worker and starter: ids, queues, keys, attributes."""

from __future__ import annotations

import hashlib

from temporalio.common import SearchAttributeKey

DEFAULT_TASK_QUEUE = "refunds"
WORKFLOW_ID_PREFIX = "refund-"
REFUND_WORKFLOW = "RefundWorkflow"  # the refund's workflow type, as activities see their caller
EXTERNAL_PREFIX = "external"  # a dashboard refund's workflow (`external-`) and booking (`external:`)
LATE_FAILURE_PREFIX = "late-failure-"
# The product's own ids under `refund-`: a default merchant's request id is its workflow's id without
# the prefix, so a request id starting so could take the place of a workflow the product starts
# later (a late failure that would reverse a refund's books finds it "already started").
PRODUCT_ID_PREFIXES = (f"{EXTERNAL_PREFIX}-", f"{EXTERNAL_PREFIX}:", LATE_FAILURE_PREFIX)

# Search attributes: what ops filter on in the Temporal UI and what `refunds pending` lists.
SA_STATUS = SearchAttributeKey.for_keyword("RefundStatus")
SA_PROVIDER = SearchAttributeKey.for_keyword("RefundProvider")
SA_PAYMENT = SearchAttributeKey.for_keyword("RefundPaymentReference")
SA_AMOUNT = SearchAttributeKey.for_int("RefundAmount")
SA_CURRENCY = SearchAttributeKey.for_keyword("RefundCurrency")
SA_RISK_SCORE = SearchAttributeKey.for_int("RefundRiskScore")
SA_MERCHANT = SearchAttributeKey.for_keyword("RefundMerchant")
SA_REVIEW_SINCE = SearchAttributeKey.for_datetime("RefundAwaitingReviewSince")
SA_ESCALATED = SearchAttributeKey.for_bool("RefundReviewEscalated")
# Who asked, when not the merchant's platform: `client:<name>` (an API client), `psp:<psp>:<warning>`
# (an early fraud warning). Set once at start; `RefundRequestedBy STARTS_WITH "psp:"` lists the
# refunds made on warnings.
SA_REQUESTED_BY = SearchAttributeKey.for_keyword("RefundRequestedBy")
SEARCH_ATTRIBUTES = (
    SA_STATUS,
    SA_PROVIDER,
    SA_PAYMENT,
    SA_AMOUNT,
    SA_CURRENCY,
    SA_RISK_SCORE,
    SA_MERCHANT,
    SA_REVIEW_SINCE,
    SA_ESCALATED,
    SA_REQUESTED_BY,
)


class Activity:
    """Activity names, so workflows call them without importing I/O code."""

    VALIDATE = "validate_refund_request"
    RESERVE = "reserve_refund_amount"
    REFUND = "refund_at_psp"
    CHECK_REFUND = "check_refund_at_psp"
    CONFIRM_OUTCOME = "confirm_psp_outcome"
    REVERSE_EXTERNAL = "reverse_external_refund"
    FINISH = "finish_refund"
    REVERSE = "reverse_failed_refund"
    RECORD_EXTERNAL = "record_external_refund"
    RESTOCK = "restock_returned_goods"
    NOTIFY = "notify_ops"
    RECORD_AUDIT = "record_audit_rows"


def psp_task_queue(task_queue: str, provider: str, merchant_id: str | None = None) -> str:
    """Where a PSP's calls are queued: one queue per PSP account (the default merchant's, or another
    merchant's own), rate-limited by its workers."""
    suffix = f"-{merchant_id}" if merchant_id else ""
    return f"{task_queue}-psp-{provider}{suffix}"


# A merchant's request ids are its own: another merchant's refund is kept under `<merchant>~<id>`,
# a separator no request id may contain, so two merchants' ids never meet. The default merchant's
# refunds keep the bare request id, as every refund did before merchants had ids of their own.
MERCHANT_SEPARATOR = "~"
# A merchant's id: it names queues, ledger accounts and search attribute values (quoted in visibility
# queries), so nothing beyond lower case letters, digits and dashes.
MERCHANT_ID_PATTERN = r"[a-z0-9][a-z0-9-]{0,63}"


def refund_id(merchant_id: str | None, request_id: str) -> str:
    """The id a merchant's refund is kept under (workflow, PSP keys, ledger): the request id,
    marked with the merchant unless it is the default one (None)."""
    return request_id if merchant_id is None else f"{merchant_id}{MERCHANT_SEPARATOR}{request_id}"


def names_own(owner: str | None, request_id: str | None, *psp_ids: str | None) -> bool:
    """Whether ids a PSP event carries can be `owner`'s (None: the default merchant's): its request
    id kept under that merchant (`refund_id`, one separator at most, in its place), and PSP ids with
    no separator at all. Ids are built from these parts; a part holding the separator could name
    another merchant's workflow or booking."""
    if any(MERCHANT_SEPARATOR in (part or "") for part in psp_ids):
        return False
    if request_id is None:
        return True
    merchant, separator, _ = request_id.rpartition(MERCHANT_SEPARATOR)
    if not separator:
        return owner is None
    return merchant == owner and MERCHANT_SEPARATOR not in merchant


def merchants_request_id(refund: str) -> str:
    """The request id the merchant knows a refund by."""
    return refund.rpartition(MERCHANT_SEPARATOR)[2]


def booked_owner(refund: str) -> tuple[str | None, str | None]:
    """Whose a booked refund is and the request id the merchant knows it by: a refund the product
    was asked for is `M~id` (M's) or `id` (the default merchant's); one adopted from a PSP
    dashboard (`external:<psp>:M~<psp id>`) is M's too, and no request of the merchant's named it."""
    prefix = f"{EXTERNAL_PREFIX}:"
    if refund.startswith(prefix):
        adopted = refund.removeprefix(prefix).partition(":")[2]
        return refund_merchant(adopted), None
    return refund_merchant(refund), merchants_request_id(refund)


def refund_merchant(refund: str) -> str | None:
    """The merchant a refund id names; None for a bare id (the default merchant's, or one kept
    before merchants had ids of their own)."""
    merchant, separator, _ = refund.partition(MERCHANT_SEPARATOR)
    return merchant if separator else None


def workflow_id(request_id: str) -> str:
    return f"{WORKFLOW_ID_PREFIX}{request_id}"


def external_refund_workflow_id(provider: str, psp_refund_id: str, merchant_id: str | None = None) -> str:
    """One per PSP refund and reporting account: another merchant's account naming the same PSP
    refund id has a workflow of its own (the default merchant's keeps the id it always had)."""
    return f"{WORKFLOW_ID_PREFIX}{EXTERNAL_PREFIX}-{provider}-{refund_id(merchant_id, psp_refund_id)}"


def external_request_id(provider: str, psp_refund_id: str, merchant_id: str | None = None) -> str:
    """The id an adopted refund is booked under: never a merchant's request id, and the reporting
    account's own, so another account cannot take it first (the default merchant's as it was)."""
    return f"{EXTERNAL_PREFIX}:{provider}:{refund_id(merchant_id, psp_refund_id)}"


def late_failure_workflow_id(request_id: str, psp_refund_id: str, merchant_id: str | None = None) -> str:
    """One per PSP refund and reporting account: a failure naming our request but another refund
    cannot take its place, nor one another merchant's account reports (it would replace the genuine
    run). The default merchant's account keeps the id every late failure had before."""
    return f"{WORKFLOW_ID_PREFIX}{LATE_FAILURE_PREFIX}{refund_id(merchant_id, request_id)}-{psp_refund_id}"


def request_id_from_workflow_id(wf_id: str) -> str:
    return wf_id.removeprefix(WORKFLOW_ID_PREFIX)


def idempotency_key(request_id: str, generation: int) -> str:
    """Deterministic PSP idempotency key: the same on every attempt of one generation.

    A new generation is only used after the PSP was searched for a refund made under the old one.
    """
    if generation < 1:
        raise ValueError("key generation starts at 1")
    return f"refund:{request_id}" if generation == 1 else f"refund:{request_id}:{generation}"


ALIAS_PREFIX = "_sha256_"  # request ids start with a letter or digit, so an alias is never one


def short_reference(request_id: str, limit: int) -> str:
    """The request id itself, or a fixed-length alias of it where the PSP's reference field is
    shorter than our ids (72 characters: the prefix and the hex SHA-256)."""
    if len(request_id) <= limit:
        return request_id
    return ALIAS_PREFIX + hashlib.sha256(request_id.encode()).hexdigest()


def is_alias(reference: str) -> bool:
    return reference.startswith(ALIAS_PREFIX)
