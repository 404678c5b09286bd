"""Adyen's Checkout modifications as the official SDK calls them, and the Adyen control API.

    sandbox = SandboxServer(port=0).start()
    adyen = mount_adyen(sandbox, webhook_url="http://127.0.0.1:8000/webhooks/adyen")
    # SDK: modifications_api.baseUrl = f"{sandbox.url}/checkout/v72"

Routes: `POST /checkout/v<N>/payments/{pspReference}/refunds | cancels | reversals` (any version
`N`, `x-api-key` header) and the JSON control API under `/_sandbox/adyen/`. A modification answers
201 `received`; its outcome follows as a signed notification (REFUND, CANCELLATION, CANCEL_OR_REFUND)
POSTed to the webhook URL from a background thread. Amounts are Adyen's minor units.

Idempotency as Adyen documents it: the first answer under an `Idempotency-Key` is stored and returned
to every retry with that key; a retry while the first still executes is 422 errorCode 704 with
`transient-error: true`; the same key with another body is 422 errorCode 704 without it. Requests
that fail validation store nothing. Faults come from the server's FaultRegistry (path `/checkout/`).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

from sandbox.adyen.engine import (
    AdyenModification,
    AdyenPayment,
    AdyenState,
    NotificationOutbox,
    delivery_payload,
    new_psp_reference,
    notification_item,
)
from sandbox.adyen.settlement_report import settlement_report
from sandbox.control import ControlError, dispatch, json_body, refuse_remote
from sandbox.faults import Fault
from sandbox.routing import SandboxRequest, SandboxResponse
from sandbox.server import SandboxServer
from sandbox.store import StoreTx, now_ms
from sandbox.webhooks import WebhookSender

CHECKOUT_PREFIX = "/checkout/"
CONTROL_PREFIX = "/_sandbox/adyen/"
DEFAULT_API_KEY = "adyen_sandbox_key"
DEFAULT_MERCHANT_ACCOUNT = "SandboxMerchant"
# A fixed test key (64 hex digits = 32 bytes), never a real one.
DEFAULT_HMAC_KEY_HEX = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"

_ROUTE = re.compile(r"/checkout/v\d+/payments/([^/]+)/(refunds|cancels|reversals)")

Action = Callable[[StoreTx], dict[str, Any]]
_ControlRoute = Callable[[SandboxRequest, list[str]], Any]


@dataclass
class AdyenApiError(Exception):
    """Adyen's error body: `{"status", "errorCode", "message", "errorType"}`."""

    status: int
    error_code: str
    message: str
    error_type: str = "validation"
    headers: dict[str, str] = field(default_factory=dict)

    def response(self) -> SandboxResponse:
        reference = new_psp_reference()
        body = {
            "status": self.status,
            "errorCode": self.error_code,
            "message": self.message,
            "errorType": self.error_type,
            "pspReference": reference,
        }
        return SandboxResponse.json(self.status, body, {"pspReference": reference, **self.headers})


MAX_REFERENCE_LENGTH = 80


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


class AdyenSandbox:
    """Route handler for `/checkout/` and `/_sandbox/adyen/`; mount it with `mount_adyen`."""

    def __init__(
        self,
        server: SandboxServer,
        *,
        api_key: str,
        merchant_account: str,
        hmac_key_hex: str,
        webhook_url: str | None,
        notify_delay_ms: int = 20,
        retry_delays: Sequence[float] = (0.05, 0.5, 2.0),
        timeout_seconds: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._server = server
        self._api_key = api_key
        self._scope = "adyen:" + hashlib.sha256(api_key.encode()).hexdigest()[:16]
        self.merchant_account = merchant_account
        self.hmac_key_hex = hmac_key_hex
        self.webhook_url = webhook_url
        self.notify_delay_ms = notify_delay_ms
        self.hold_notifications = False
        self._sleep = sleep
        self.state = AdyenState(server.store)
        self.sender = WebhookSender(
            server.store,
            NotificationOutbox(),
            name="sandbox-adyen-notifications",
            retry_delays=retry_delays,
            timeout_seconds=timeout_seconds,
        )
        self._control_routes: list[tuple[str, re.Pattern[str], _ControlRoute]] = [
            ("POST", re.compile(r"/_sandbox/adyen/payments"), self._seed_payment),
            ("GET", re.compile(r"/_sandbox/adyen/payments/([^/]+)/modifications"), self._modifications),
            ("POST", re.compile(r"/_sandbox/adyen/payments/([^/]+)/chargeback"), self._chargeback),
            ("POST", re.compile(r"/_sandbox/adyen/payments/([^/]+)/fraud"), self._fraud),
            (
                "POST",
                re.compile(r"/_sandbox/adyen/payments/([^/]+)/dashboard_refund"),
                self._dashboard_refund,
            ),
            ("POST", re.compile(r"/_sandbox/adyen/modifications/([^/]+)/refund_failed"), self._refund_failed),
            (
                "POST",
                re.compile(r"/_sandbox/adyen/modifications/([^/]+)/refunded_reversed"),
                self._refunded_reversed,
            ),
            ("GET", re.compile(r"/_sandbox/adyen/notifications"), self._notifications),
            ("GET", re.compile(r"/_sandbox/adyen/settlement-report"), self._settlement_report),
            ("POST", re.compile(r"/_sandbox/adyen/notifications/hold"), self._hold),
            ("POST", re.compile(r"/_sandbox/adyen/notifications/release"), self._release),
            ("GET", re.compile(r"/_sandbox/adyen/config"), self._config),
            ("POST", re.compile(r"/_sandbox/adyen/config"), self._set_config),
            ("GET", re.compile(r"/_sandbox/adyen/faults"), self._list_faults),
            ("POST", re.compile(r"/_sandbox/adyen/faults"), self._add_fault),
            ("DELETE", re.compile(r"/_sandbox/adyen/faults"), self._clear_faults),
            ("POST", re.compile(r"/_sandbox/adyen/reset"), self._reset),
        ]

    def start(self) -> AdyenSandbox:
        self.sender.start()
        return self

    def close(self) -> None:
        """Stop delivering notifications (before the server stops: it closes the store)."""
        self.sender.stop()

    def handle(self, request: SandboxRequest) -> SandboxResponse:
        if request.path.startswith(CONTROL_PREFIX):
            return self._control(request)
        return self._checkout(request)

    # Checkout --------------------------------------------------------------------------------

    def _checkout(self, request: SandboxRequest) -> SandboxResponse:
        if request.header("x-api-key") != self._api_key:
            return AdyenApiError(401, "000", "HTTP Status Response - Unauthorized", "security").response()
        faults = self._server.faults
        fault = faults.take("entry", request.method, request.path)
        if fault is not None:
            return self._entry_fault(fault)
        try:
            action = self._prepare(request)
        except AdyenApiError as err:
            return err.response()
        key = request.header("idempotency-key")
        if key:
            return self._execute_idempotent(request, key, action)
        fault = faults.take("execute", request.method, request.path)
        if fault is not None and fault.kind == "slow":
            self._sleep(fault.delay_ms / 1000)
        if fault is not None and fault.kind == "error_500_stored":
            return self._internal_error().response()
        with self._server.store.transaction() as tx:
            status, body = self._run(tx, action)
        return self._answer(status, body, {}, fault)

    @staticmethod
    def _internal_error() -> AdyenApiError:
        return AdyenApiError(500, "000", "Internal error (sandbox fault)", "internal")

    @staticmethod
    def _entry_fault(fault: Fault) -> SandboxResponse:
        match fault.kind:
            case "rate_limit":
                return AdyenApiError(
                    429,
                    "000",
                    "Too many requests (sandbox fault)",
                    "security",
                    {"Retry-After": f"{fault.retry_after_seconds:g}"},
                ).response()
            case "error_500":
                return AdyenApiError(
                    500, "000", "Internal error (sandbox fault)", "internal", {"transient-error": "true"}
                ).response()
            case _:
                raise ValueError(f"{fault.kind} is not an entry fault")

    @staticmethod
    def _answer(status: int, body: bytes, headers: dict[str, str], fault: Fault | None) -> SandboxResponse:
        try:
            reference = str(json.loads(body).get("pspReference") or "")
        except ValueError:
            reference = ""
        response = SandboxResponse(status, body, {**headers, "pspReference": reference})
        response.drop_connection = fault is not None and fault.kind == "lose_response"
        return response

    def _run(self, tx: StoreTx, action: Action) -> tuple[int, bytes]:
        try:
            with tx.savepoint():
                return 201, json.dumps(action(tx)).encode()
        except AdyenApiError as err:
            response = err.response()
            return response.status, response.body

    def _execute_idempotent(self, request: SandboxRequest, key: str, action: Action) -> SandboxResponse:
        fingerprint = hashlib.sha256(
            f"{request.method} {request.path} ".encode()
            + json.dumps(json.loads(request.body or b"{}"), sort_keys=True).encode()
        ).hexdigest()
        store = self._server.store
        with store.transaction() as tx:
            record = tx.idempotency_get(self._scope, key)
            if record is None:
                tx.idempotency_begin(self._scope, key, fingerprint, request.request_id)
        headers = {"Idempotency-Key": key}
        if record is not None:
            if record.fingerprint != fingerprint:
                return AdyenApiError(422, "704", "request already processed or in progress").response()
            if record.state != "done" or record.status_code is None or record.body is None:
                return AdyenApiError(
                    422,
                    "704",
                    "request already processed or in progress",
                    headers={"transient-error": "true"},
                ).response()
            self._server.stats.record_replay(request.method, request.path)
            return self._answer(record.status_code, record.body, headers, None)
        fault = self._server.faults.take("execute", request.method, request.path)
        try:
            if fault is not None and fault.kind == "slow":
                self._sleep(fault.delay_ms / 1000)
            with store.transaction() as tx:
                if fault is not None and fault.kind == "error_500_stored":
                    response = self._internal_error().response()
                    status, body = response.status, response.body
                else:
                    status, body = self._run(tx, action)
                tx.idempotency_complete(self._scope, key, status, body)
        except Exception:
            with store.transaction() as tx:
                tx.idempotency_forget(self._scope, key)
            raise
        return self._answer(status, body, headers, fault)

    def _prepare(self, request: SandboxRequest) -> Action:
        """Validate what needs no state (failures store nothing) and return the action."""
        match = _ROUTE.fullmatch(request.path)
        if match is None or request.method != "POST":
            raise AdyenApiError(404, "000", f"Unknown endpoint {request.method} {request.path}", "internal")
        payment_reference, operation = unquote(match.group(1)), match.group(2)
        try:
            body = json.loads(request.body or b"{}")
        except ValueError as err:
            raise AdyenApiError(400, "702", f"Structure of the request is invalid: {err}") from err
        if not isinstance(body, dict):
            raise AdyenApiError(400, "702", "Structure of the request is invalid")
        if body.get("merchantAccount") != self.merchant_account:
            raise AdyenApiError(403, "901", "Invalid Merchant Account", "security")
        reference = body.get("reference")
        if reference is not None and not isinstance(reference, str):
            raise AdyenApiError(422, "000", "reference must be a string")
        if reference is not None and len(reference) > MAX_REFERENCE_LENGTH:
            raise AdyenApiError(422, "000", f"Field 'reference' exceeds {MAX_REFERENCE_LENGTH} characters")
        amount: tuple[int, str] | None = None
        if operation == "refunds":
            raw = body.get("amount")
            value = raw.get("value") if isinstance(raw, dict) else None
            currency = raw.get("currency") if isinstance(raw, dict) else None
            if not _positive_int(value) or not (isinstance(currency, str) and len(currency) == 3):
                raise AdyenApiError(422, "137", "Invalid amount specified")
            amount = (int(value), currency.upper())  # type: ignore[arg-type]

        def action(tx: StoreTx) -> dict[str, Any]:
            return self._modify(tx, operation, payment_reference, reference or "", amount, request)

        return action

    def _modify(
        self,
        tx: StoreTx,
        operation: str,
        payment_reference: str,
        reference: str,
        amount: tuple[int, str] | None,
        request: SandboxRequest,
    ) -> dict[str, Any]:
        payment = self.state.payment(tx, payment_reference)
        if payment is None:
            raise AdyenApiError(422, "167", "Original pspReference required for this operation")
        if amount is not None and amount[1] != payment.currency:
            raise AdyenApiError(422, "137", "Invalid amount specified: currency differs from the payment")
        remaining = payment.amount - self.state.refunded(tx, payment.psp_reference)
        match operation, payment.state:
            case "refunds", "captured" if amount is not None and amount[0] <= remaining:
                kind, event, value, ok, reason = "refund", "REFUND", amount[0], True, ""
            case "refunds", "captured":
                kind, event, ok, reason = "refund", "REFUND", False, "Insufficient balance on payment"
                value = amount[0] if amount else 0
            case "refunds", _:
                kind, event, ok = "refund", "REFUND", False
                value = amount[0] if amount else 0
                reason = "Transaction hasn't been captured" if payment.state == "authorised" else "Cancelled"
            case "cancels", "authorised":
                kind, event, value, ok, reason = "cancel", "CANCELLATION", payment.amount, True, ""
            case "cancels", _:
                kind, event, value, ok = "cancel", "CANCELLATION", payment.amount, False
                reason = f"Payment is {payment.state}"
            case "reversals", "authorised":
                kind, event, value, ok, reason = "reversal", "CANCEL_OR_REFUND", payment.amount, True, ""
            case "reversals", "captured" if remaining > 0:
                kind, event, value, ok, reason = "reversal", "CANCEL_OR_REFUND", remaining, True, ""
            case _:
                kind, event, value, ok = "reversal", "CANCEL_OR_REFUND", payment.amount, False
                reason = "Insufficient balance on payment"
        if ok and kind != "refund" and payment.state == "authorised":
            self.state.set_payment_state(tx, payment.psp_reference, "cancelled")
        modification = AdyenModification(
            psp_reference=new_psp_reference(),
            payment_psp_reference=payment.psp_reference,
            kind=kind,
            merchant_reference=reference,
            amount=value,
            currency=payment.currency,
            status="succeeded" if ok else "failed",
            reason=reason,
            idempotency_key=request.header("idempotency-key"),
            created_ms=now_ms(),
        )
        self.state.insert_modification(tx, modification)
        self._notify(
            tx,
            event,
            ok,
            modification.psp_reference,
            original=payment.psp_reference,
            merchant_reference=reference,
            amount=value,
            currency=payment.currency,
            reason=reason,
        )
        answer: dict[str, Any] = {
            "merchantAccount": self.merchant_account,
            "paymentPspReference": payment.psp_reference,
            "pspReference": modification.psp_reference,
            "reference": reference,
            "status": "received",
        }
        if operation == "refunds" and amount is not None:
            answer["amount"] = {"value": amount[0], "currency": amount[1]}
        return answer

    def _notify(
        self,
        tx: StoreTx,
        event_code: str,
        success: bool,
        psp_reference: str,
        *,
        original: str | None,
        merchant_reference: str,
        amount: int,
        currency: str,
        reason: str = "",
        additional_data: Mapping[str, str] | None = None,
    ) -> None:
        item = notification_item(
            event_code=event_code,
            success=success,
            psp_reference=psp_reference,
            merchant_account=self.merchant_account,
            merchant_reference=merchant_reference,
            amount=amount,
            currency=currency,
            original_reference=original,
            reason=reason,
            hmac_key_hex=self.hmac_key_hex,
            additional_data=additional_data,
        )
        self.state.insert_notification(
            tx,
            event_code=event_code,
            psp_reference=psp_reference,
            payload=delivery_payload([item]),
            url=self.webhook_url,
            held=self.hold_notifications,
            delay_ms=self.notify_delay_ms,
        )
        tx.after_commit(self.sender.wake)

    # control ---------------------------------------------------------------------------------

    def _control(self, request: SandboxRequest) -> SandboxResponse:
        if (refused := refuse_remote(request)) is not None:
            return refused
        return dispatch(self._control_routes, request, request.path)

    def _seed_payment(self, request: SandboxRequest, args: list[str]) -> Any:
        """A payment Adyen authorised (and captured): AUTHORISATION (+ CAPTURE) notifications follow."""
        body = json_body(request)
        amount, currency = body.get("amount"), body.get("currency")
        if not isinstance(amount, int) or not _positive_int(amount):
            raise ControlError(400, "amount must be a positive integer in Adyen's minor units")
        if not isinstance(currency, str) or not re.fullmatch(r"[A-Za-z]{3}", currency):
            raise ControlError(400, "currency must be a three-letter code")
        reference = body.get("psp_reference") or new_psp_reference()
        merchant_reference = body.get("merchant_reference") or f"order-{reference.lower()}"
        if not isinstance(reference, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", reference):
            raise ControlError(400, "psp_reference must be 1-64 letters, digits, '-' or '_'")
        captured = bool(body.get("captured", True))
        with self._server.store.transaction() as tx:
            existing = self.state.payment(tx, reference)
            if existing is not None:
                return {"pspReference": reference, "created": False}
            payment = AdyenPayment(
                psp_reference=reference,
                merchant_account=self.merchant_account,
                merchant_reference=str(merchant_reference),
                amount=amount,
                currency=currency.upper(),
                state="captured" if captured else "authorised",
                created_ms=now_ms(),
            )
            self.state.insert_payment(tx, payment)
            common: dict[str, Any] = {
                "merchant_reference": payment.merchant_reference,
                "amount": payment.amount,
                "currency": payment.currency,
            }
            self._notify(tx, "AUTHORISATION", True, reference, original=None, **common)
            if captured:
                self._notify(tx, "CAPTURE", True, new_psp_reference(), original=reference, **common)
        return {"pspReference": reference, "created": True}

    def _modifications(self, request: SandboxRequest, args: list[str]) -> Any:
        with self._server.store.transaction() as tx:
            return {"data": [m.to_json() for m in self.state.modifications(tx, unquote(args[0]))]}

    def _dashboard_refund(self, request: SandboxRequest, args: list[str]) -> Any:
        """A refund made by hand in the Customer Area: its reference is the payment's own."""
        body = json_body(request)
        value = body.get("amount")
        if not isinstance(value, int) or not _positive_int(value):
            raise ControlError(400, "amount must be a positive integer in minor units")
        with self._server.store.transaction() as tx:
            payment = self.state.payment(tx, unquote(args[0]))
            if payment is None:
                raise ControlError(404, f"no payment {args[0]}")
            amount = (int(value), payment.currency)
            return self._modify(
                tx, "refunds", payment.psp_reference, payment.merchant_reference, amount, request
            )

    def _settlement_report(self, request: SandboxRequest, args: list[str]) -> Any:
        """The Settlement details report (CSV) of what was settled, for `merchant_account` or all."""
        given = parse_qs(request.query).get("merchant_account")
        account = given[0] if given else None
        with self._server.store.transaction() as tx:
            return {"csv": settlement_report(tx, account)}

    def _chargeback(self, request: SandboxRequest, args: list[str]) -> Any:
        with self._server.store.transaction() as tx:
            payment = self.state.payment(tx, unquote(args[0]))
            if payment is None:
                raise ControlError(404, f"no payment {args[0]}")
            self._notify(
                tx,
                "NOTIFICATION_OF_CHARGEBACK",
                True,
                new_psp_reference(),
                original=payment.psp_reference,
                merchant_reference=payment.merchant_reference,
                amount=payment.amount,
                currency=payment.currency,
                reason="Fraudulent transaction",
            )
        return {"ok": True}

    def _fraud(self, request: SandboxRequest, args: list[str]) -> Any:
        """The issuer reports the payment as fraud: NOTIFICATION_OF_FRAUD with a pspReference of its
        own, the payment's as originalReference, the fraud type in its `reason` and the scheme's
        reason code in `additionalData`, as Adyen's published example has them. Returns the
        notification's pspReference."""
        body = json_body(request)
        reason, code = body.get("reason", "Card reported stolen"), body.get("reason_code", "1")
        if not isinstance(reason, str) or not isinstance(code, str):
            raise ControlError(400, "reason and reason_code must be strings")
        notification = new_psp_reference()
        with self._server.store.transaction() as tx:
            payment = self.state.payment(tx, unquote(args[0]))
            if payment is None:
                raise ControlError(404, f"no payment {args[0]}")
            self._notify(
                tx,
                "NOTIFICATION_OF_FRAUD",
                True,
                notification,
                original=payment.psp_reference,
                merchant_reference=payment.merchant_reference,
                amount=payment.amount,
                currency=payment.currency,
                reason=reason,
                additional_data={"nofReasonCode": code, "nofSchemeCode": "visa"},
            )
        return {"pspReference": notification}

    def _refund_failed(self, request: SandboxRequest, args: list[str]) -> Any:
        """A late failure: REFUND_FAILED for a refund whose REFUND said success (the bank bounced it)."""
        reason = str(json_body(request).get("reason") or "Refund failed at the issuer")
        return self._undo_refund(unquote(args[0]), "REFUND_FAILED", reason)

    def _refunded_reversed(self, request: SandboxRequest, args: list[str]) -> Any:
        """REFUNDED_REVERSED: a successful refund's money came back to the merchant's bank account (the
        customer's account was closed, say): the customer was not paid after all."""
        reason = str(json_body(request).get("reason") or "Refunded amount returned by the issuer")
        return self._undo_refund(unquote(args[0]), "REFUNDED_REVERSED", reason)

    def _undo_refund(self, refund_reference: str, event_code: str, reason: str) -> Any:
        """A refund that succeeded, undone: its amount is refundable again. The item carries the refund's
        pspReference and reference and the payment's as originalReference (Adyen's published examples)."""
        with self._server.store.transaction() as tx:
            refund = self.state.modification(tx, refund_reference)
            if refund is None or refund.kind not in ("refund", "reversal"):
                raise ControlError(404, f"no refund {refund_reference}")
            if refund.status != "succeeded":
                raise ControlError(409, f"refund {refund_reference} is {refund.status}, not succeeded")
            self.state.set_modification_status(tx, refund.psp_reference, event_code.lower(), reason)
            self._notify(
                tx,
                event_code,
                True,
                refund.psp_reference,
                original=refund.payment_psp_reference,
                merchant_reference=refund.merchant_reference,
                amount=refund.amount,
                currency=refund.currency,
                reason=reason,
            )
        return {"ok": True}

    def _notifications(self, request: SandboxRequest, args: list[str]) -> Any:
        values = parse_qs(request.query).get("psp_reference")
        with self._server.store.transaction() as tx:
            rows = self.state.notifications(tx, values[0] if values else None)
        return {"data": [row.to_json() for row in rows]}

    def _hold(self, request: SandboxRequest, args: list[str]) -> Any:
        self.hold_notifications = bool(json_body(request).get("held", True))
        return {"held": self.hold_notifications}

    def _release(self, request: SandboxRequest, args: list[str]) -> Any:
        order = json_body(request).get("order", "fifo")
        if order not in ("fifo", "reverse"):
            raise ControlError(400, "order must be fifo or reverse")
        self.hold_notifications = False
        with self._server.store.transaction() as tx:
            released = self.state.release_held(tx, reverse=order == "reverse")
            tx.after_commit(self.sender.wake)
        return {"released": released}

    def _config(self, request: SandboxRequest, args: list[str]) -> Any:
        return {
            "webhook_url": self.webhook_url,
            "merchant_account": self.merchant_account,
            "hold_notifications": self.hold_notifications,
        }

    def _set_config(self, request: SandboxRequest, args: list[str]) -> Any:
        body = json_body(request)
        if "webhook_url" in body:
            url = body["webhook_url"]
            if url is not None and not (isinstance(url, str) and re.match(r"https?://", url)):
                raise ControlError(400, "webhook_url must be an http(s) URL or null")
            self.webhook_url = url
        return self._config(request, args)

    def _list_faults(self, request: SandboxRequest, args: list[str]) -> Any:
        faults = self._server.faults.snapshot()
        return {"faults": [f for f in faults if str(f["path_prefix"]).startswith(CHECKOUT_PREFIX)]}

    def _add_fault(self, request: SandboxRequest, args: list[str]) -> Any:
        body: Mapping[str, Any] = {"path_prefix": CHECKOUT_PREFIX, **json_body(request)}
        try:
            fault = Fault.from_json(body)
        except ValueError as err:
            raise ControlError(400, str(err)) from err
        if not fault.path_prefix.startswith(CHECKOUT_PREFIX):
            raise ControlError(400, f"path_prefix must start with {CHECKOUT_PREFIX}")
        self._server.faults.add(fault)
        return self._list_faults(request, args)

    def _clear_faults(self, request: SandboxRequest, args: list[str]) -> Any:
        # FaultRegistry can only clear everything; Stripe faults go too (see the module notes).
        self._server.faults.clear()
        return {"faults": []}

    def _reset(self, request: SandboxRequest, args: list[str]) -> Any:
        with self._server.store.transaction() as tx:
            self.state.reset(tx)
        self.hold_notifications = False
        return {"ok": True}


def mount_adyen(
    server: SandboxServer,
    *,
    api_key: str = DEFAULT_API_KEY,
    merchant_account: str = DEFAULT_MERCHANT_ACCOUNT,
    hmac_key_hex: str = DEFAULT_HMAC_KEY_HEX,
    webhook_url: str | None = None,
    notify_delay_ms: int = 20,
    retry_delays: Sequence[float] = (0.05, 0.5, 2.0),
) -> AdyenSandbox:
    """Serve Adyen's Checkout (`/checkout/`) and its control API (`/_sandbox/adyen/`) on `server`.

    Works before or after `server.start()`. Its notification thread starts now; call `close()` on
    the result before `server.stop()` (the server does not know about it).
    """
    sandbox = AdyenSandbox(
        server,
        api_key=api_key,
        merchant_account=merchant_account,
        hmac_key_hex=hmac_key_hex,
        webhook_url=webhook_url,
        notify_delay_ms=notify_delay_ms,
        retry_delays=retry_delays,
    )
    server.router.mount(CHECKOUT_PREFIX, sandbox)
    server.router.mount(CONTROL_PREFIX, sandbox, count_calls=False)
    server.on_stop(sandbox.close)
    return sandbox.start()
