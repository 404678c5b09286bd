"""Stripe through its official SDK: refund and void, payment lookup, refund search, webhooks.

The SDK never retries (`max_network_retries=0`): retries are Temporal's, with the same idempotency
key. A refusal by Stripe (amount too large, already refunded, declined) is a FAILED `RefundResult`;
transport, auth, rate-limit and bug-shaped failures raise `PspError`, classified as docs/architecture.md's
table says.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import stripe

from adapters.psp import stripe_transformers as tf
from adapters.psp.base import PaymentLookup, PspError, PspEvent, WebhookRejected, ensure_refund_of, refused
from adapters.psp.headers import header, retry_after_in_seconds
from domain.contracts import PspRefundCall, RefundResult
from domain.naming import idempotency_key
from domain.reconciliation import PspRefundRecord
from domain.status import ErrorCode, Provider, RefundMethod

WEBHOOK_TOLERANCE_SECONDS = 300


def _error_code(err: stripe.StripeError) -> str | None:
    return err.code or getattr(err.error, "code", None)


def psp_error(err: stripe.StripeError) -> PspError:
    """The one error shape at our boundary, per docs/architecture.md's error classification."""
    message = f"stripe: {err.user_message or type(err).__name__}"
    retry_after_seconds: float | None = None
    poisoned = False
    match err:
        case stripe.IdempotencyError():
            code, retryable = ErrorCode.IDEMPOTENCY_CONFLICT, False
        case stripe.AuthenticationError() | stripe.PermissionError():
            code, retryable = ErrorCode.PSP_AUTH_FAILED, False
        case stripe.RateLimitError():
            code, retryable = ErrorCode.PSP_RATE_LIMITED, True
            retry_after_seconds = retry_after_in_seconds(err.headers)
        case stripe.APIConnectionError():
            code, retryable = ErrorCode.PSP_UNAVAILABLE, True
        case stripe.InvalidRequestError() | stripe.CardError():
            # Reaches here only where a refusal cannot be a result (lookups) or is our bug.
            bug = _error_code(err) in tf.BUG_CODES
            code, retryable = ErrorCode.INVALID_REQUEST if bug else tf.decline_code(_error_code(err)), False
        case stripe.APIError() if err.http_status == 409:
            # idempotency_key_in_use (our earlier attempt is still executing) or a lock conflict.
            code, retryable = ErrorCode.PSP_BUSY, True
        case _:
            # A 5xx. Stripe stores it under the key and replays it: then this key is spent.
            poisoned = header(err.headers, "Idempotent-Replayed") == "true"
            code, retryable = ErrorCode.PSP_UNAVAILABLE, not poisoned
            if poisoned:
                message += " (stored failure replayed for this idempotency key)"
    return PspError(
        code,
        message,
        retryable=retryable,
        http_status=err.http_status,
        psp_request_id=err.request_id,
        retry_after_seconds=retry_after_seconds,
        key_poisoned=poisoned,
    )


def _is_refusal(err: stripe.StripeError) -> bool:
    """Stripe declined the operation itself: a result for the workflow, not an exception."""
    return isinstance(err, stripe.CardError) or (
        isinstance(err, stripe.InvalidRequestError) and _error_code(err) not in tf.BUG_CODES
    )


def _refused(call: PspRefundCall, err: stripe.StripeError, started_seconds: float) -> RefundResult:
    return refused(
        call,
        tf.decline_code(_error_code(err)),
        err.user_message or "",
        psp_request_id=err.request_id,
        psp_response_ms=int((time.perf_counter() - started_seconds) * 1000),
    )


def _is_missing(err: stripe.StripeError) -> bool:
    return isinstance(err, stripe.InvalidRequestError) and (
        err.http_status == 404 or _error_code(err) == "resource_missing"
    )


class StripeAdapter:
    provider = Provider.STRIPE
    reads_refunds_back = True  # refunds.retrieve
    list_page_size = 100

    def __init__(self, api_key: str, api_base: str, webhook_secret: str, timeout_seconds: float = 30) -> None:
        # `requests` is a dependency of the stripe package; its client keeps one pooled session
        # per thread, which suits activities running in a thread pool.
        http_client = stripe.RequestsClient(timeout=(min(float(timeout_seconds), 10.0), timeout_seconds))
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base.rstrip("/")},
            max_network_retries=0,
            http_client=http_client,
        )
        self._webhook_secret = webhook_secret

    # calls ------------------------------------------------------------------------------------

    @staticmethod
    def _request_id(obj: stripe.StripeObject) -> str | None:
        response = obj.last_response
        return response.request_id if response is not None else None

    def _intent_id(self, reference: str) -> str | None:
        """The PaymentIntent behind a reference (`pi_` as is; a charge's `payment_intent`)."""
        if not reference.startswith("ch_"):
            return reference
        charge = self._client.v1.charges.retrieve(reference)
        intent = charge.payment_intent
        return intent if isinstance(intent, str) else getattr(intent, "id", None)

    # PspAdapter -------------------------------------------------------------------------------

    def lookup_payment(self, reference: str) -> PaymentLookup:
        started = time.perf_counter()
        try:
            if reference.startswith("pi_"):
                obj: stripe.StripeObject = self._client.v1.payment_intents.retrieve(
                    reference, {"expand": ["latest_charge.balance_transaction"]}
                )
                record = tf.payment_from_intent(obj.to_dict())
            elif reference.startswith("ch_"):
                obj = self._client.v1.charges.retrieve(reference)
                record = tf.payment_from_charge(obj.to_dict())
            else:
                return PaymentLookup(tf.not_found(reference))
        except stripe.StripeError as err:
            elapsed = int((time.perf_counter() - started) * 1000)
            if _is_missing(err):
                return PaymentLookup(tf.not_found(reference), err.request_id, elapsed)
            raise psp_error(err) from err
        elapsed = int((time.perf_counter() - started) * 1000)
        return PaymentLookup(record, self._request_id(obj), elapsed)

    def refund(self, call: PspRefundCall) -> RefundResult:
        key = idempotency_key(call.request_id, call.key_generation)
        match call.method:
            case RefundMethod.REFUND:
                return self._refund(call, key)
            case RefundMethod.VOID:
                return self._void(call, key)

    def _refund(self, call: PspRefundCall, key: str) -> RefundResult:
        amount = tf.to_stripe_amount(call.amount)
        if amount is None:
            return refused(
                call, ErrorCode.INVALID_AMOUNT, f"{call.amount} cannot be expressed in Stripe's minor units"
            )
        params: Any = tf.refund_create_params(call, amount)  # a RefundCreateParams
        started = time.perf_counter()
        try:
            refund = self._client.v1.refunds.create(params, options={"idempotency_key": key})
        except stripe.StripeError as err:
            if _is_refusal(err):
                return _refused(call, err, started)
            raise psp_error(err) from err
        elapsed = int((time.perf_counter() - started) * 1000)
        return tf.refund_result(
            refund.to_dict(), psp_request_id=self._request_id(refund), psp_response_ms=elapsed
        )

    def _void(self, call: PspRefundCall, key: str) -> RefundResult:
        started = time.perf_counter()
        try:
            intent_id = self._intent_id(call.payment.reference)
            if intent_id is None:
                return refused(call, ErrorCode.PSP_DECLINED, "the charge has no PaymentIntent to cancel")
            intent = self._client.v1.payment_intents.cancel(
                intent_id,
                {"cancellation_reason": "requested_by_customer"},
                options={"idempotency_key": key},
            )
        except stripe.StripeError as err:
            if _is_refusal(err):
                return _refused(call, err, started)
            raise psp_error(err) from err
        elapsed = int((time.perf_counter() - started) * 1000)
        return tf.void_result(
            intent.to_dict(), psp_request_id=self._request_id(intent), psp_response_ms=elapsed
        )

    def refunds_in_report(self, report: str) -> list[PspRefundRecord]:
        raise PspError(
            ErrorCode.NOT_SUPPORTED,
            "stripe lists its refunds through its API: reconcile without --report",
            retryable=False,
        )

    def list_refunds(
        self, since: datetime, payment_references: Sequence[str], everything: bool
    ) -> list[PspRefundRecord]:
        """Every refund created since `since` (Stripe lists them all), or those of the payments."""
        created = int(since.timestamp())
        queries: list[Any] = (
            [{"created": {"gte": created}, "limit": self.list_page_size}]
            if everything
            else [{**tf.payment_param(ref), "limit": self.list_page_size} for ref in payment_references]
        )
        records: list[PspRefundRecord] = []
        try:
            for params in queries:
                for refund in self._client.v1.refunds.list(params).auto_paging_iter():
                    if int(refund.created or 0) >= created:
                        records.append(tf.refund_record(refund.to_dict()))
        except stripe.StripeError as err:
            raise psp_error(err) from err
        return records

    def find_refund(self, call: PspRefundCall) -> RefundResult | None:
        started = time.perf_counter()
        try:
            match call.method:
                case RefundMethod.REFUND:
                    params: Any = {  # a RefundListParams
                        **tf.payment_param(call.payment.reference),
                        "limit": self.list_page_size,
                        "expand": ["data.balance_transaction"],
                    }
                    page = self._client.v1.refunds.list(params)
                    refunds = [refund.to_dict() for refund in page.auto_paging_iter()]
                    found = tf.pick_refund(refunds, call.request_id)
                    if found is None:
                        return None
                    return tf.refund_result(
                        found,
                        psp_request_id=self._request_id(page),
                        psp_response_ms=int((time.perf_counter() - started) * 1000),
                        adopted=True,
                    )
                case RefundMethod.VOID:
                    intent_id = self._intent_id(call.payment.reference)
                    if intent_id is None:
                        return None
                    intent = self._client.v1.payment_intents.retrieve(intent_id)
                    if intent.status != "canceled":
                        return None
                    return tf.void_result(
                        intent.to_dict(),
                        psp_request_id=self._request_id(intent),
                        psp_response_ms=int((time.perf_counter() - started) * 1000),
                        adopted=True,
                    )
        except stripe.StripeError as err:
            if _is_missing(err):
                return None
            raise psp_error(err) from err

    def get_refund(self, psp_refund_id: str, request_id: str) -> RefundResult:
        started = time.perf_counter()
        try:
            if psp_refund_id.startswith("pi_"):
                intent = self._client.v1.payment_intents.retrieve(psp_refund_id)
                return tf.void_result(
                    intent.to_dict(),
                    psp_request_id=self._request_id(intent),
                    psp_response_ms=int((time.perf_counter() - started) * 1000),
                )
            refund = self._client.v1.refunds.retrieve(psp_refund_id)
        except stripe.StripeError as err:
            raise psp_error(err) from err
        body = refund.to_dict()
        owner = tf.refund_request_id(body)
        ensure_refund_of(self.provider, psp_refund_id, owner, request_id, self._request_id(refund))
        return tf.refund_result(
            body,
            psp_request_id=self._request_id(refund),
            psp_response_ms=int((time.perf_counter() - started) * 1000),
        )

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> list[PspEvent]:
        """Verify Stripe's signature (5 minute tolerance), then classify the one event."""
        signature = header(headers, "Stripe-Signature")
        if not signature:
            raise WebhookRejected("signature_missing", "Stripe-Signature header is missing")
        try:
            event = stripe.Webhook.construct_event(
                body, signature, self._webhook_secret, tolerance=WEBHOOK_TOLERANCE_SECONDS
            )
        except stripe.SignatureVerificationError as err:
            raise self._rejection(body, signature) from err
        except (ValueError, TypeError, AttributeError, KeyError) as err:
            raise WebhookRejected("invalid_payload", f"not a Stripe event: {err}") from err
        payload: dict[str, Any] = event.to_dict()
        if not payload.get("id") or not payload.get("type"):
            raise WebhookRejected("invalid_payload", "the event has no id or type")
        disputes = tf.dispute_events(payload)
        return disputes if disputes is not None else [tf.classify_event(payload)]

    def webhook_acknowledgement(self) -> tuple[str, str]:
        return '{"received": true}', "application/json"

    def _rejection(self, body: bytes, signature: str) -> WebhookRejected:
        """Tell a stale signature (valid, too old) from a wrong one."""
        try:
            stripe.WebhookSignature.verify_header(body, signature, self._webhook_secret, None)
        except stripe.SignatureVerificationError:
            return WebhookRejected("signature_invalid", "Stripe-Signature does not match the body")
        except UnicodeDecodeError:
            return WebhookRejected("invalid_payload", "the body is not UTF-8")
        return WebhookRejected(
            "signature_expired", "Stripe-Signature timestamp is outside the 5 minute tolerance"
        )
