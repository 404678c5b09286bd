"""PayPal through its official SDK (`paypal-server-sdk`): refund and void, lookup, search, webhooks.

What the SDK does, read in its source (2.4.0, on apimatic-core):
- The base URI comes from `Configuration.get_base_uri`, bound into the client at construction; we
  subclass the configuration to point it at `api_base`.
- Retries: a urllib3 `Retry` on the requests session (`max_retries`, `retry_statuses`,
  `retry_methods`). We pass 0 / [] / ["GET"]: no retries at all (the total is 0; an empty method list
  makes urllib3 print a FutureWarning on every session); retries are Temporal's, with the same
  PayPal-Request-Id.
- Timeout: `Configuration(timeout=...)` goes to every `requests` call (connect and read).
- Errors: non-2xx raise `ApiException` (500 and the oauth endpoint's other codes) or its subclass
  `ErrorException` (every other status, body unboxed into name/details/debug_id); transport failures
  surface as `requests` exceptions, unwrapped.
- OAuth: the SDK's default token fetch swallows a failing token request and raises a bare
  `AuthValidationException`, which hides a 5xx or 429 of the token endpoint behind "auth failed". We
  give it a token provider that fetches through the same SDK call and lets errors through, so they
  are classified like any other call.

A refusal by PayPal (amount exceeded, already refunded, declined) is a FAILED `RefundResult`;
transport, auth, rate-limit and bug-shaped failures raise `PspError` per docs/architecture.md's table.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import threading
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
import requests
from apimatic_core.exceptions.auth_validation_exception import AuthValidationException
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from paypalserversdk.configuration import Configuration, Server
from paypalserversdk.exceptions.api_exception import ApiException
from paypalserversdk.http.auth.o_auth_2 import ClientCredentialsAuthCredentials
from paypalserversdk.models.money import Money as PayPalMoney
from paypalserversdk.models.refund_request import RefundRequest
from paypalserversdk.paypal_serversdk_client import PaypalServersdkClient

from adapters.psp import paypal_certificates as certs
from adapters.psp import paypal_transformers as tf
from adapters.psp.base import (
    PaymentLookup,
    PspError,
    PspEvent,
    ReferenceBook,
    WebhookRejected,
    ensure_refund_of,
    refused,
)
from adapters.psp.headers import header, retry_after_in_seconds
from domain.contracts import PspRefundCall, RefundResult
from domain.naming import idempotency_key, is_alias
from domain.reconciliation import PspRefundRecord
from domain.status import ErrorCode, Provider, RefundMethod

AUTH_ALGORITHM = "SHA256withRSA"
CERT_FETCH_TIMEOUT_SECONDS = 5.0
MAX_CERT_BYTES = 64 * 1024
CERT_FAILURE_TTL_SECONDS = 60.0  # a failing certificate URL is not fetched again for a minute
MAX_CONCURRENT_CERT_FETCHES = 4
MAX_REMEMBERED_FAILURES = 1024
MAX_CACHED_CERTIFICATES = 256
# PayPal signs every delivery attempt afresh, so a transmission older than this is a replay.
TRANSMISSION_TOLERANCE_SECONDS = 15 * 60
# A transmission id is remembered with its body this long: far past the tolerance above, after which
# its signature is refused anyway.
TRANSMISSION_MEMORY_SECONDS = 24 * 3600
MAX_REMEMBERED_TRANSMISSIONS = 100_000  # in memory only (adapters without a database)
_BUSY_ISSUES = frozenset({"PREVIOUS_REQUEST_IN_PROGRESS", "DUPLICATE_REQUEST_ID"})
_REPRESENTATION = "return=representation"


def _json(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _debug_id(err: ApiException) -> str | None:
    return header(err.response.headers, "Paypal-Debug-Id") or (_json(err.response.text) or {}).get("debug_id")


def _issue(err: ApiException) -> str | None:
    return tf.error_issue(_json(err.response.text))


def psp_error(err: Exception) -> PspError:
    """The one error shape at our boundary, per docs/architecture.md's error classification."""
    if isinstance(err, requests.RequestException):
        return PspError(ErrorCode.PSP_UNAVAILABLE, f"paypal: {type(err).__name__}: {err}", retryable=True)
    if isinstance(err, AuthValidationException):
        return PspError(ErrorCode.PSP_AUTH_FAILED, f"paypal: {err.message}", retryable=False)
    if not isinstance(err, ApiException):
        return PspError(ErrorCode.PSP_UNAVAILABLE, f"paypal: {type(err).__name__}: {err}", retryable=True)
    status = err.response_code
    issue = _issue(err)
    message = f"paypal: {status} {issue or ''} {tf.error_message(_json(err.response.text))}".rstrip()
    retry_after_seconds: float | None = None
    if issue in _BUSY_ISSUES or status == 409:
        # Our earlier attempt with this PayPal-Request-Id is still executing.
        code, retryable = ErrorCode.PSP_BUSY, True
    elif status in (401, 403):
        code, retryable = ErrorCode.PSP_AUTH_FAILED, False
    elif status == 429:
        code, retryable = ErrorCode.PSP_RATE_LIMITED, True
        retry_after_seconds = retry_after_in_seconds(err.response.headers)
    elif status >= 500 or status in (408, 425):
        code, retryable = ErrorCode.PSP_UNAVAILABLE, True
    elif status == 404:
        code, retryable = ErrorCode.PAYMENT_NOT_FOUND, False
    elif status == 400:
        # INVALID_REQUEST: our request was malformed. A bug, not PayPal's refusal.
        code, retryable = ErrorCode.INVALID_REQUEST, False
    else:
        code, retryable = tf.decline_code(issue), False
    return PspError(
        code,
        message,
        retryable=retryable,
        http_status=status,
        psp_request_id=_debug_id(err),
        retry_after_seconds=retry_after_seconds,
    )


def _is_refusal(err: Exception) -> bool:
    """PayPal declined the refund or void itself: a result for the workflow, not an exception."""
    return (
        isinstance(err, ApiException) and err.response_code in (404, 422) and _issue(err) not in _BUSY_ISSUES
    )


def _is_missing(err: Exception) -> bool:
    return isinstance(err, ApiException) and err.response_code == 404


def _elapsed_ms(started_seconds: float) -> int:
    return int((time.perf_counter() - started_seconds) * 1000)


class _Configuration(Configuration):  # type: ignore[misc]  # the SDK is untyped
    """The SDK's configuration with its environment's base URI replaced by ours."""

    def __init__(self, api_base: str, **kwargs: Any) -> None:
        self._api_base = api_base.rstrip("/")
        super().__init__(**kwargs)

    def get_base_uri(self, server: Server = Server.DEFAULT) -> str:
        return self._api_base


def _check_fresh(transmission_time: str) -> datetime:
    """The transmission's time, once it is within the tolerance of now."""
    try:
        sent = datetime.fromisoformat(transmission_time.replace("Z", "+00:00"))
    except ValueError as err:
        raise WebhookRejected("signature_invalid", "PAYPAL-TRANSMISSION-TIME is not a time") from err
    if sent.tzinfo is None:
        raise WebhookRejected("signature_invalid", "PAYPAL-TRANSMISSION-TIME has no time zone")
    age = abs((datetime.now(UTC) - sent).total_seconds())
    if age > TRANSMISSION_TOLERANCE_SECONDS:
        raise WebhookRejected(
            "signature_expired", "PAYPAL-TRANSMISSION-TIME is outside the 15 minute tolerance"
        )
    return sent


class TransmissionBook(Protocol):
    """PayPal transmissions already taken, each with a digest of the body it came with.

    PayPal's signature covers crc32(body), not the body: whoever saw one delivery can pad another
    body to its CRC and send it under its headers within the tolerance. The first body a verified
    transmission id comes with is the only one taken under it; PayPal's own redelivery of that body
    is still taken (and deduplicated by its event id downstream)."""

    def admit(self, account: str, transmission_id: str, body_sha256: str) -> bool:
        """Whether this body may be taken under this id: the first seen with it, or the same again."""
        ...


class MemoryTransmissionBook:
    """This process's memory of transmissions, for an adapter without a database (tests, tools)."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], tuple[str, float]] = {}
        self._lock = threading.Lock()

    def admit(self, account: str, transmission_id: str, body_sha256: str) -> bool:
        now = time.monotonic()
        with self._lock:
            if len(self._seen) >= MAX_REMEMBERED_TRANSMISSIONS:
                cutoff = now - TRANSMISSION_MEMORY_SECONDS
                self._seen = {k: v for k, v in self._seen.items() if v[1] >= cutoff}
            seen = self._seen.setdefault((account, transmission_id), (body_sha256, now))
        return seen[0] == body_sha256


class PayPalAdapter:
    provider = Provider.PAYPAL
    reads_refunds_back = True  # GET /v2/payments/refunds/{id}

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        api_base: str,
        webhook_id: str,
        cert_url_prefixes: list[str],
        timeout_seconds: float = 30,
        references: ReferenceBook | None = None,
        transmissions: TransmissionBook | None = None,
        trusted_roots: Sequence[x509.Certificate] = certs.PAYPAL_ROOTS,
    ) -> None:
        credentials = ClientCredentialsAuthCredentials(
            o_auth_client_id=client_id,
            o_auth_client_secret=client_secret,
            o_auth_token_provider=self._fetch_token,
        )
        self._config = _Configuration(
            api_base,
            timeout=timeout_seconds,
            max_retries=0,
            retry_statuses=[],
            retry_methods=["GET"],  # never used: max_retries=0 (an empty list draws a FutureWarning)
            client_credentials_auth_credentials=credentials,
        )
        self._client = PaypalServersdkClient(config=self._config)
        self._webhook_id = webhook_id
        self._references = references  # aliases of request ids PayPal's custom_id cannot hold
        # A prefix ends with "/" so that "https://api.paypal.com" cannot match api.paypal.com.evil.
        self._cert_url_prefixes = [p if p.endswith("/") else p + "/" for p in cert_url_prefixes]
        # Transmissions already taken, by the webhook they were signed for (one per merchant account)
        self._transmissions = transmissions if transmissions is not None else MemoryTransmissionBook()
        # The roots a signing certificate must chain to: DigiCert's (paypal_certificates.py), and
        # the PSP sandbox's CA in dev and tests only (workers/psp_wiring/paypal.py)
        self._trusted_roots = tuple(trusted_roots)
        # The certificates each cert URL served, checked again at every use (they expire)
        self._cert_cache: dict[str, list[x509.Certificate]] = {}
        self._cert_lock = threading.Lock()
        self._cert_failures: dict[str, tuple[float, WebhookRejected]] = {}
        self._cert_fetches = threading.BoundedSemaphore(MAX_CONCURRENT_CERT_FETCHES)
        self._cert_http = httpx.Client(timeout=CERT_FETCH_TIMEOUT_SECONDS, follow_redirects=False)

    @staticmethod
    def _fetch_token(last_token: Any, auth_manager: Any) -> Any:
        """The SDK's own token request, with its errors let through (see the module docstring)."""
        return auth_manager.fetch_token()

    # calls ------------------------------------------------------------------------------------

    @staticmethod
    def _body(response: Any) -> dict[str, Any] | None:
        return _json(getattr(response, "text", None))

    @staticmethod
    def _debug(response: Any) -> str | None:
        return header(getattr(response, "headers", None), "Paypal-Debug-Id")

    def _capture(self, capture_id: str) -> tuple[dict[str, Any], str | None]:
        response = self._client.payments.get_captured_payment({"capture_id": capture_id})
        return self._body(response) or {"id": capture_id}, self._debug(response)

    def _authorization(self, authorization_id: str) -> tuple[dict[str, Any], str | None]:
        response = self._client.payments.get_authorized_payment({"authorization_id": authorization_id})
        return self._body(response) or {"id": authorization_id}, self._debug(response)

    def _order_refunds(self, capture: Mapping[str, Any]) -> list[Mapping[str, Any]] | None:
        """The capture's refunds as its order lists them; None when there is no order to ask.

        PayPal has no "list refunds of a capture" call; the order's `purchase_units[].payments.refunds`
        is the only listing (Transaction Search lags by hours).
        """
        order_id = tf.order_id(capture)
        if order_id is None:
            return None
        try:
            response = self._client.orders.get_order({"id": order_id})
        except ApiException as err:
            if _is_missing(err):
                return None
            raise
        return tf.capture_refunds(self._body(response) or {}, str(capture["id"]))

    # PspAdapter -------------------------------------------------------------------------------

    def lookup_payment(self, reference: str) -> PaymentLookup:
        """A PayPal id does not say what it names: a capture first, then an authorisation."""
        started = time.perf_counter()
        try:
            try:
                capture, debug_id = self._capture(reference)
            except ApiException as err:
                if not _is_missing(err):
                    raise
            else:
                refunds = self._order_refunds(capture)
                currency = tf.payment_from_capture(capture, None).currency
                refunded = tf.refunded_total(refunds, currency) if refunds is not None else None
                return PaymentLookup(
                    tf.payment_from_capture(capture, refunded), debug_id, _elapsed_ms(started)
                )
            try:
                authorization, debug_id = self._authorization(reference)
            except ApiException as err:
                if _is_missing(err):
                    return PaymentLookup(tf.not_found(reference), _debug_id(err), _elapsed_ms(started))
                raise
        except (ApiException, AuthValidationException, requests.RequestException) as err:
            raise psp_error(err) from err
        return PaymentLookup(tf.payment_from_authorization(authorization), debug_id, _elapsed_ms(started))

    def refund(self, call: PspRefundCall) -> RefundResult:
        key = idempotency_key(call.request_id, call.key_generation)
        match call.method:
            case RefundMethod.REFUND:
                return self._refund(call, key)
            case RefundMethod.VOID:
                return self._void(call, key)

    def _refused(self, call: PspRefundCall, err: ApiException, started_seconds: float) -> RefundResult:
        body = _json(err.response.text)
        issue = tf.error_issue(body)
        return refused(
            call,
            ErrorCode.PAYMENT_NOT_FOUND if err.response_code == 404 else tf.decline_code(issue),
            f"{issue or err.response_code}: {tf.error_message(body)}".rstrip(": "),
            psp_request_id=_debug_id(err),
            psp_response_ms=_elapsed_ms(started_seconds),
        )

    def _refund(self, call: PspRefundCall, key: str) -> RefundResult:
        value = tf.to_paypal_value(call.amount)
        if value is None:
            return refused(
                call,
                ErrorCode.INVALID_AMOUNT,
                f"{call.amount} cannot be sent to PayPal (unsupported currency or decimals)",
            )
        fields = tf.refund_body(call, value)
        if is_alias(fields["custom_id"]) and self._references is not None:
            self._references.remember(fields["custom_id"], call.request_id)  # before PayPal echoes it
        body = RefundRequest(
            amount=PayPalMoney(currency_code=fields["amount"]["currency_code"], value=value),
            invoice_id=fields["invoice_id"],
            custom_id=fields["custom_id"],
            note_to_payer=fields["note_to_payer"],
        )
        started = time.perf_counter()
        try:
            response = self._client.payments.refund_captured_payment(
                {
                    "capture_id": call.payment.reference,
                    "paypal_request_id": key,
                    "prefer": _REPRESENTATION,
                    "body": body,
                }
            )
        except (ApiException, AuthValidationException, requests.RequestException) as err:
            if isinstance(err, ApiException) and _is_refusal(err):
                return self._refused(call, err, started)
            raise psp_error(err) from err
        refund = self._body(response)
        if refund is None or "id" not in refund:
            raise PspError(ErrorCode.PSP_UNAVAILABLE, "paypal: refund answer without an id", retryable=True)
        return tf.refund_result(
            refund,
            fallback_amount=call.amount,
            psp_request_id=self._debug(response),
            psp_response_ms=_elapsed_ms(started),
        )

    def _void(self, call: PspRefundCall, key: str) -> RefundResult:
        started = time.perf_counter()
        reference = call.payment.reference
        try:
            response = self._client.payments.void_payment(
                {"authorization_id": reference, "paypal_request_id": key, "prefer": _REPRESENTATION}
            )
            authorization = self._body(response)
            debug_id = self._debug(response)
            if authorization is None:  # 204: PayPal ignored Prefer; read the state back
                authorization, debug_id = self._authorization(reference)
        except (ApiException, AuthValidationException, requests.RequestException) as err:
            if isinstance(err, ApiException) and _is_refusal(err):
                return self._refused(call, err, started)
            raise psp_error(err) from err
        return tf.void_result(
            authorization,
            fallback_amount=call.amount,
            psp_request_id=debug_id,
            psp_response_ms=_elapsed_ms(started),
        )

    def find_refund(self, call: PspRefundCall) -> RefundResult | None:
        started = time.perf_counter()
        reference = call.payment.reference
        try:
            match call.method:
                case RefundMethod.REFUND:
                    capture, debug_id = self._capture(reference)
                    refunds = self._order_refunds(capture)
                    found = tf.pick_refund(refunds or [], call.request_id)
                    if found is None:
                        return None
                    return tf.refund_result(
                        found,
                        fallback_amount=call.amount,
                        psp_request_id=debug_id,
                        psp_response_ms=_elapsed_ms(started),
                        adopted=True,
                    )
                case RefundMethod.VOID:
                    authorization, debug_id = self._authorization(reference)
                    if authorization.get("status") != "VOIDED":
                        return None
                    return tf.void_result(
                        authorization,
                        fallback_amount=call.amount,
                        psp_request_id=debug_id,
                        psp_response_ms=_elapsed_ms(started),
                        adopted=True,
                    )
        except (ApiException, AuthValidationException, requests.RequestException) as err:
            if _is_missing(err):
                return None
            raise psp_error(err) from err

    def refunds_in_report(self, report: str) -> list[PspRefundRecord]:
        raise PspError(
            ErrorCode.NOT_SUPPORTED,
            "paypal lists its refunds through its API: reconcile without --report",
            retryable=False,
        )

    def list_refunds(
        self, since: datetime, payment_references: Sequence[str], everything: bool
    ) -> list[PspRefundRecord]:
        """The refunds of each capture (PayPal lists a capture's refunds on its order), or with
        `everything` every refund the account made since `since`, through the Transaction Search API
        (refunds made elsewhere too; PayPal lists a transaction there within three hours)."""
        if everything:
            return self._searched_refunds(since)
        records: list[PspRefundRecord] = []
        for capture_id in payment_references:
            try:
                capture, _ = self._capture(capture_id)
                refunds = self._order_refunds(capture) or []
            except (ApiException, AuthValidationException, requests.RequestException) as err:
                if _is_missing(err):
                    continue
                raise psp_error(err) from err
            records.extend(
                tf.refund_record(refund, capture_id) for refund in refunds if tf.created_since(refund, since)
            )
        return records

    def _searched_refunds(self, since: datetime) -> list[PspRefundRecord]:
        """Refund transactions (event code T1107) since `since`, in PayPal's 31-day windows, page by page."""
        records: list[PspRefundRecord] = []
        for start, end in tf.search_windows(since, datetime.now(UTC)):
            page = 1
            while True:
                options = {
                    "start_date": tf.search_time(start),
                    "end_date": tf.search_time(end),
                    "transaction_type": tf.REFUND_EVENT_CODE,
                    "fields": "transaction_info",
                    "page_size": tf.SEARCH_PAGE_SIZE,
                    "page": page,
                }
                try:
                    body = self._body(self._client.transaction_search.search_transactions(options)) or {}
                except (ApiException, AuthValidationException, requests.RequestException) as err:
                    raise psp_error(err) from err
                records.extend(tf.searched_refunds(body))
                if page >= min(int(body.get("total_pages") or 1), tf.SEARCH_PAGES):
                    break
                page += 1
        return records

    def get_refund(self, psp_refund_id: str, request_id: str) -> RefundResult:
        """A refund by id; a void's id is its authorisation's, read when no refund has that id."""
        started = time.perf_counter()
        try:
            try:
                response = self._client.payments.get_refund({"refund_id": psp_refund_id})
            except ApiException as err:
                if not _is_missing(err):
                    raise
                authorization, debug_id = self._authorization(psp_refund_id)
                return tf.void_result(
                    authorization,
                    fallback_amount=tf.money_or_unknown(authorization.get("amount")),
                    psp_request_id=debug_id,
                    psp_response_ms=_elapsed_ms(started),
                )
        except (ApiException, AuthValidationException, requests.RequestException) as err:
            raise psp_error(err) from err
        refund = self._body(response) or {"id": psp_refund_id}
        owner = tf.refund_request_id(refund)
        if owner is not None and tf.made_for(refund, request_id):
            owner = request_id  # sent as its alias
        ensure_refund_of(self.provider, psp_refund_id, owner, request_id, self._debug(response))
        return tf.refund_result(
            refund, psp_request_id=self._debug(response), psp_response_ms=_elapsed_ms(started)
        )

    # webhooks ---------------------------------------------------------------------------------

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> list[PspEvent]:
        """Verify PayPal's transmission signature, then classify the one event.

        What a verified event may move, and what is read back at PayPal first: a refund's outcome
        (PAYMENT.CAPTURE.REFUNDED, PAYMENT.REFUND.*) only signals the refund's workflow, which reads
        the refund back with `get_refund` before it books or reverses anything (activities/payments.py
        `confirm_outcome`, for the late-failure and dashboard-refund workflows too); a void
        (PAYMENT.AUTHORIZATION.VOIDED) carries no amount and books nothing of its own; every other
        PAYMENT.CAPTURE.* event is ignored (a payment's state is always read with `lookup_payment`). A
        dispute or a reversal (CUSTOMER.DISPUTE.CREATED, PAYMENT.CAPTURE.REVERSED) opens a hold, which
        moves no money and stops refunds of the capture until ops release it. A reversal is read back
        here first (`_reversal_read_back`); a dispute is taken on PayPal's verified word (this product
        does not use PayPal's Disputes API)."""
        self._verify(body, headers)
        try:
            payload = json.loads(body)
        except ValueError as err:
            raise WebhookRejected("invalid_payload", f"not a PayPal event: {err}") from err
        if not isinstance(payload, dict) or not payload.get("id") or not payload.get("event_type"):
            raise WebhookRejected("invalid_payload", "the event has no id or event_type")
        event = self._ours(tf.classify_event(payload))
        if event.raw_type == "PAYMENT.CAPTURE.REVERSED" and event.kind == "dispute_opened":
            event = self._reversal_read_back(event)
        return [event]

    def _reversal_read_back(self, event: PspEvent) -> PspEvent:
        """PAYMENT.CAPTURE.REVERSED names a reversal (a refund resource PayPal made): it holds the
        capture PayPal's own record of that reversal names, and nothing when PayPal knows none."""
        reversal_id = event.detail.get("reversal_id", "")
        if not reversal_id:
            return replace(event, kind="ignored", detail={"why": "a reversal without an id"})
        try:
            response = self._client.payments.get_refund({"refund_id": reversal_id})
        except (ApiException, AuthValidationException, requests.RequestException) as err:
            if _is_missing(err):
                return replace(event, kind="ignored", detail={"why": "PayPal knows no such reversal"})
            # PayPal redelivers a refused delivery: the hold opens once it can be read back
            raise WebhookRejected(psp_error(err).code.value, f"reading the reversal back: {err}") from err
        capture_id = tf.refund_capture_id(self._body(response) or {})
        if capture_id is None:
            return replace(event, kind="ignored", detail={"why": "the reversal names no capture"})
        return replace(event, payment_reference=capture_id)

    def _ours(self, event: PspEvent) -> PspEvent:
        """Our request id for an alias we sent; an alias we never sent names no refund of ours."""
        if event.request_id is None or not is_alias(event.request_id):
            return event
        resolved = self._references.resolve(event.request_id) if self._references is not None else None
        if resolved is None:
            return replace(event, kind="ignored", detail={"why": "an alias of no request of ours"})
        return replace(event, request_id=resolved)

    def webhook_acknowledgement(self) -> tuple[str, str]:
        # PayPal only looks at the status: any 2xx stops its retries.
        return "", "text/plain"

    def _verify(self, body: bytes, headers: Mapping[str, str]) -> None:
        transmission_id = header(headers, "PAYPAL-TRANSMISSION-ID")
        transmission_time = header(headers, "PAYPAL-TRANSMISSION-TIME")
        signature = header(headers, "PAYPAL-TRANSMISSION-SIG")
        cert_url = header(headers, "PAYPAL-CERT-URL")
        algorithm = header(headers, "PAYPAL-AUTH-ALGO")
        if not (transmission_id and transmission_time and signature and cert_url):
            raise WebhookRejected("signature_missing", "PayPal transmission headers are missing")
        if algorithm != AUTH_ALGORITHM:
            raise WebhookRejected("signature_invalid", f"unsupported PAYPAL-AUTH-ALGO {algorithm!r}")
        if not any(cert_url.startswith(prefix) for prefix in self._cert_url_prefixes):
            raise WebhookRejected("signature_invalid", "PAYPAL-CERT-URL is not one of PayPal's")
        try:
            raw_signature = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError) as err:
            raise WebhookRejected("signature_invalid", "PAYPAL-TRANSMISSION-SIG is not base64") from err
        sent = _check_fresh(transmission_time)
        signed = f"{transmission_id}|{transmission_time}|{self._webhook_id}|{zlib.crc32(body)}".encode()
        key = self._public_key(cert_url, sent)
        try:
            key.verify(raw_signature, signed, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature as err:
            raise WebhookRejected("signature_invalid", "PAYPAL-TRANSMISSION-SIG does not match") from err
        # The signature covers only crc32(body): a transmission is taken with one body alone.
        digest = hashlib.sha256(body).hexdigest()
        if not self._transmissions.admit(self._webhook_id, transmission_id, digest):
            raise WebhookRejected(
                "signature_replayed",
                "this PAYPAL-TRANSMISSION-ID was taken before with another body (its CRC matched)",
            )

    def _public_key(self, cert_url: str, sent: datetime) -> rsa.RSAPublicKey:
        """The signing certificate's RSA key, once its chain proves it PayPal's at the transmission's
        time and now (paypal_certificates.py), checked at every use. The bundle is fetched once per
        URL (PayPal's cert URLs name one certificate each).

        A failed fetch is remembered briefly and only a few fetches run at once, so forged deliveries
        naming a slow or failing certificate URL can neither tie up the service nor hammer the host."""
        with self._cert_lock:
            chain = self._cert_cache.get(cert_url)
            failed = self._cert_failures.get(cert_url)
        if chain is None:
            if failed is not None and failed[0] > time.monotonic():
                raise failed[1]
            chain = self._fetch_once(cert_url)
        return certs.signing_key(chain, cert_url, self._trusted_roots, (sent, datetime.now(UTC)))

    def _fetch_once(self, cert_url: str) -> list[x509.Certificate]:
        if not self._cert_fetches.acquire(blocking=False):
            raise WebhookRejected("certificate_unavailable", "too many certificate fetches at once")
        try:
            chain = self._fetch_chain(cert_url)
        except WebhookRejected as err:
            with self._cert_lock:
                if len(self._cert_failures) >= MAX_REMEMBERED_FAILURES:
                    self._cert_failures.clear()
                self._cert_failures[cert_url] = (time.monotonic() + CERT_FAILURE_TTL_SECONDS, err)
            raise
        finally:
            self._cert_fetches.release()
        with self._cert_lock:
            if len(self._cert_cache) >= MAX_CACHED_CERTIFICATES:
                self._cert_cache.clear()
            self._cert_cache[cert_url] = chain
        return chain

    def _fetch_chain(self, cert_url: str) -> list[x509.Certificate]:
        try:
            response = self._cert_http.get(cert_url)
            response.raise_for_status()
            if len(response.content) > MAX_CERT_BYTES:
                raise WebhookRejected("signature_invalid", "the certificate is too large")
            return certs.parse_bundle(response.content)
        except httpx.HTTPError as err:
            # Not the sender's fault as far as we know: PayPal retries a delivery we refuse.
            raise WebhookRejected("certificate_unavailable", f"cannot fetch {cert_url}: {err}") from err
        except ValueError as err:
            raise WebhookRejected("signature_invalid", "the certificate is not PEM") from err
