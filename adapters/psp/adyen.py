"""Adyen through its official SDK (Checkout API): refund and cancel, payments from notifications, webhooks.

Adyen answers a refund or cancel with `received` only; the outcome arrives later as a signed
notification (REFUND, CANCELLATION, REFUND_FAILED). Adyen cannot read a payment or a modification back,
so payments come from the PaymentBook (fed by AUTHORISATION/CAPTURE notifications), `find_refund`
finds nothing and `get_refund` says "still pending": the workflow relies on the notification and its
confirmation deadline.

Idempotency (docs.adyen.com/development-resources/api-idempotency): the `Idempotency-Key` header is
kept per company account for at least 31 days and a retry with it returns the first response. A
duplicate while the first is in flight is a 422 (or 409) with errorCode 704 and `transient-error:
true` (retry later, same key). Adyen does not flag replayed responses, so a stored failure cannot be
recognised: `key_poisoned` is never set and the key generation never rotates for Adyen, which is also
the only safe choice when the PSP cannot be searched for a refund made under an older key.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import Adyen
import requests
from Adyen.services.checkout.modifications_api import ModificationsApi

from adapters.psp import adyen_transformers as tf
from adapters.psp.adyen_settlement import ReportError, refunds_in_report
from adapters.psp.base import (
    PaymentBook,
    PaymentLookup,
    PspError,
    PspEvent,
    ReferenceBook,
    WebhookRejected,
    refused,
)
from adapters.psp.headers import header, retry_after_in_seconds
from domain.contracts import PspRefundCall, RefundResult
from domain.money import Money
from domain.naming import idempotency_key, is_alias, short_reference
from domain.reconciliation import PspRefundRecord
from domain.status import ErrorCode, Provider, PspRefundStatus, RefundMethod


def sdk_checkout_version() -> str:
    """The Checkout API version this SDK speaks (`v72` for Adyen 16), read off its own base URL."""
    match = re.search(r"/(v\d+)$", ModificationsApi().baseUrl)
    if match is None:
        raise RuntimeError("cannot tell the Adyen SDK's Checkout API version")
    return match.group(1)


ADYEN_MAX_KEY_LENGTH = 64
ADYEN_MAX_REFERENCE_LENGTH = 80  # a modification's `reference`, echoed as merchantReference
# Marks a modification as ours: one made in the Customer Area carries the payment's or a typed one.
OUR_REFERENCE_PREFIX = "rf-"


def adyen_reference(request_id: str) -> str:
    """What we send as a modification's `reference`: marked ours, short enough for Adyen."""
    limit = ADYEN_MAX_REFERENCE_LENGTH - len(OUR_REFERENCE_PREFIX)
    return OUR_REFERENCE_PREFIX + short_reference(request_id, limit)


def adyen_idempotency_key(request_id: str, generation: int) -> str:
    """`domain.naming.idempotency_key`, or a digest of it when longer than Adyen's 64 characters.

    Our request ids may be 128 characters; Adyen rejects longer keys. The digest is deterministic,
    so every attempt of one generation still sends the same key.
    """
    key = idempotency_key(request_id, generation)
    if len(key) <= ADYEN_MAX_KEY_LENGTH:
        return key
    return "refund:sha256:" + hashlib.sha256(key.encode()).hexdigest()[:50]


def _platform(api_base: str) -> tuple[str, str | None]:
    """The SDK's platform and live prefix for a base URL.

    With platform "test" the SDK rewrites every "-live" in the URL to "-test", so a live base
    (`https://<prefix>-checkout-live.adyenpayments.com/checkout`) needs platform "live", which in
    turn requires `live_endpoint_prefix` to be set (it is not used for a URL we override).
    """
    match = re.match(r"https?://([^/.]+)-checkout-live\.", api_base)
    return ("live", match.group(1)) if match else ("test", None)


def _message(err: Adyen.AdyenError) -> str:
    body = err.message
    if isinstance(body, Mapping):
        return str(body.get("message") or body.get("errorType") or "")
    return str(body)[:200]


def _status(err: Adyen.AdyenError) -> int | None:
    return err.status_code if isinstance(err.status_code, int) else None


def psp_error(err: Adyen.AdyenError | requests.RequestException) -> PspError:
    """The one error shape at our boundary, per docs/architecture.md's error classification.

    The SDK raises by HTTP status (Adyen/client.py `_raise_http_error`): 400 AdyenAPIValidationError,
    401 AdyenAPIAuthenticationError, 403 AdyenAPIInvalidPermission, 422 AdyenAPIUnprocessableEntity,
    404 and 500 AdyenAPICommunicationError, any other status (429, 502, 503...) AdyenAPIResponseError.
    Transport failures are `requests` exceptions, not wrapped.
    """
    if isinstance(err, requests.RequestException):
        return PspError(
            ErrorCode.PSP_UNAVAILABLE, f"adyen: {type(err).__name__}: {err}"[:500], retryable=True
        )
    status = _status(err)
    headers = err.headers
    psp_reference = header(headers, "pspReference")
    message = f"adyen: {_message(err) or type(err).__name__}"
    retry_after_seconds: float | None = None
    match status:
        case 401 | 403:
            code, retryable = ErrorCode.PSP_AUTH_FAILED, False
        case 429:
            code, retryable = ErrorCode.PSP_RATE_LIMITED, True
            retry_after_seconds = retry_after_in_seconds(headers)
        case 409 | 422 if err.error_code == tf.IDEMPOTENCY_ERROR_CODE:
            transient = (header(headers, "transient-error") or "").lower() == "true"
            if transient:
                code, retryable = ErrorCode.PSP_BUSY, True
            else:
                code, retryable = ErrorCode.IDEMPOTENCY_CONFLICT, False
        case 404:
            code, retryable = ErrorCode.INVALID_REQUEST, False
            message += " (no such endpoint: check REFUNDS_ADYEN_API_BASE)"
        case int() if status >= 500:
            code, retryable = ErrorCode.PSP_UNAVAILABLE, True
        case _:
            # 400 (malformed: our bug), other 4xx, or an SDK-side error without a status.
            code, retryable = ErrorCode.INVALID_REQUEST, False
    return PspError(
        code,
        message,
        retryable=retryable,
        http_status=status,
        psp_request_id=psp_reference,
        retry_after_seconds=retry_after_seconds,
    )


def _is_refusal(err: Adyen.AdyenError) -> bool:
    """A 422 that is Adyen refusing the modification itself (not an idempotency error)."""
    return _status(err) == 422 and err.error_code != tf.IDEMPOTENCY_ERROR_CODE


class AdyenAdapter:
    provider = Provider.ADYEN
    reads_refunds_back = False  # Checkout cannot read a modification back: its notification is the only word

    def __init__(
        self,
        api_key: str,
        api_base: str,
        merchant_account: str,
        hmac_key_hex: str,
        payments: PaymentBook,
        references: ReferenceBook,
        timeout_seconds: float = 30,
    ) -> None:
        base = api_base.rstrip("/")
        platform, live_prefix = _platform(base)
        adyen = Adyen.Adyen()
        adyen.client.xapikey = api_key
        adyen.client.platform = platform
        adyen.client.live_endpoint_prefix = live_prefix
        adyen.client.http_timeout = int(max(timeout_seconds, 1))
        self._modifications: ModificationsApi = adyen.checkout.modifications_api
        self._modifications.baseUrl = f"{base}/{sdk_checkout_version()}"
        self._merchant_account = merchant_account
        self._hmac_key_hex = hmac_key_hex
        self._payments = payments
        self._references = references

    @property
    def checkout_url(self) -> str:
        """The versioned Checkout base the SDK calls, e.g. `https://checkout-test.adyen.com/v72`."""
        return str(self._modifications.baseUrl)

    # PspAdapter -------------------------------------------------------------------------------

    def lookup_payment(self, reference: str) -> PaymentLookup:
        """Adyen cannot be asked: what its AUTHORISATION/CAPTURE notifications told us, if anything."""
        record = self._payments.get(Provider.ADYEN, reference, self._merchant_account)
        return PaymentLookup(record if record is not None else tf.not_found(reference))

    def refund(self, call: PspRefundCall) -> RefundResult:
        key = adyen_idempotency_key(call.request_id, call.key_generation)
        reference = call.payment.reference
        match call.method:
            case RefundMethod.REFUND:
                amount = tf.to_adyen_amount(call.amount)
                if amount is None:
                    return refused(
                        call,
                        ErrorCode.INVALID_AMOUNT,
                        f"{call.amount} cannot be expressed in Adyen's minor units",
                    )
                request = tf.refund_request(amount, self._merchant_account, self._reference(call))
                send = self._modifications.refund_captured_payment
            case RefundMethod.VOID:
                request = tf.cancel_request(self._merchant_account, self._reference(call))
                send = self._modifications.cancel_authorised_payment_by_psp_reference
        started = time.perf_counter()
        try:
            result = send(request, reference, idempotency_key=key)
        except Adyen.AdyenError as err:
            if _is_refusal(err):
                return refused(
                    call,
                    tf.validation_decline_code(err.error_code),
                    _message(err),
                    psp_request_id=header(err.headers, "pspReference"),
                )
            raise psp_error(err) from err
        except requests.RequestException as err:
            raise psp_error(err) from err
        elapsed = int((time.perf_counter() - started) * 1000)
        answer = result.message if isinstance(result.message, Mapping) else {}
        return tf.modification_result(
            answer, call, psp_request_id=result.psp or None, psp_response_ms=elapsed
        )

    def find_refund(self, call: PspRefundCall) -> RefundResult | None:
        """Always None: Adyen has no API to list or search a payment's modifications.

        Nothing is lost by it: a retry uses the same idempotency key (Adyen returns the first
        answer), and the outcome of a refund made under any key arrives as a notification whose
        merchantReference is our request id.
        """
        return None

    def list_refunds(
        self, since: datetime, payment_references: Sequence[str], everything: bool
    ) -> list[PspRefundRecord]:
        """Adyen has no API that lists modifications: its Settlement details report is the source."""
        raise PspError(
            ErrorCode.NOT_SUPPORTED,
            "adyen: Checkout cannot list refunds; give its Settlement details report (--report FILE)",
            retryable=False,
        )

    def refunds_in_report(self, report: str) -> list[PspRefundRecord]:
        """The Settlement details report's refunds of this merchant account."""
        try:
            return refunds_in_report(report, self._merchant_account)
        except ReportError as err:
            raise PspError(ErrorCode.INVALID_REQUEST, f"adyen: {err}", retryable=False) from err

    def get_refund(self, psp_refund_id: str, request_id: str) -> RefundResult:
        """Always PENDING: Checkout cannot read a modification back.

        Raising instead would fail the confirmation poll; PENDING keeps the workflow waiting for
        the REFUND/CANCELLATION notification until its confirmation deadline hands it to ops.
        """
        # The amount is unknown here too; the confirmation poll reads only the status.
        return RefundResult(
            psp_refund_id=psp_refund_id,
            status=PspRefundStatus.PENDING,
            amount=Money(value=0, currency="EUR"),
        )

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> list[PspEvent]:
        """Verify every item's HMAC first; one bad item rejects the whole delivery."""
        items = self._items(body)
        for index, item in enumerate(items):
            if tf.item_signature(item) is None:
                raise WebhookRejected("signature_missing", f"notification item {index} has no hmacSignature")
            if not tf.signature_valid(item, self._hmac_key_hex):
                raise WebhookRejected(
                    "signature_invalid", f"notification item {index} fails its HMAC signature"
                )
        events: list[PspEvent] = []
        for item in items:
            account = item.get("merchantAccountCode")
            if account != self._merchant_account:
                events.append(
                    PspEvent(
                        tf.event_id(item),
                        "ignored",
                        raw_type=str(item.get("eventCode") or ""),
                        detail={"why": "other merchant account", "merchant_account": str(account)},
                    )
                )
                continue
            events.append(replace(self._ours(tf.classify_item(item)), account=self._merchant_account))
        return events

    def _reference(self, call: PspRefundCall) -> str:
        """Our marked request id, or its alias when too long for Adyen (remembered first, so the
        notification that echoes it can be traced back)."""
        reference = adyen_reference(call.request_id)
        alias = reference.removeprefix(OUR_REFERENCE_PREFIX)
        if is_alias(alias):
            self._references.remember(alias, call.request_id)
        return reference

    def _ours(self, event: PspEvent) -> PspEvent:
        """Our request id for a merchantReference we sent; None for one we did not (to adopt)."""
        if event.kind != "refund_update" or event.request_id is None:
            return event
        if not event.request_id.startswith(OUR_REFERENCE_PREFIX):
            return replace(event, request_id=None)
        request_id = event.request_id.removeprefix(OUR_REFERENCE_PREFIX)
        if is_alias(request_id):
            return replace(event, request_id=self._references.resolve(request_id))
        return replace(event, request_id=request_id)

    def webhook_acknowledgement(self) -> tuple[str, str]:
        return "[accepted]", "text/plain"

    @staticmethod
    def _items(body: bytes) -> list[Mapping[str, Any]]:
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError) as err:  # nesting past the parser's depth: before any HMAC
            raise WebhookRejected("invalid_payload", f"not JSON: {err}") from err
        wrapped = payload.get("notificationItems") if isinstance(payload, Mapping) else None
        if not isinstance(wrapped, list) or not wrapped:
            raise WebhookRejected("invalid_payload", "no notificationItems")
        items: list[Mapping[str, Any]] = []
        for entry in wrapped:
            item = entry.get("NotificationRequestItem") if isinstance(entry, Mapping) else None
            if not isinstance(item, Mapping):
                raise WebhookRejected("invalid_payload", "an entry has no NotificationRequestItem")
            items.append(item)
        return items
