"""PayPal's REST API as `paypal-server-sdk` speaks it, mounted on a running `SandboxServer` from outside.

    with SandboxServer(state_path=...) as server:
        paypal = mount_paypal(server, webhook_url="http://127.0.0.1:8000/webhooks/paypal")
        ...  # stopping the server stops PayPal's settlement and webhook threads first

Routes: `POST /v1/oauth2/token` (Basic client credentials -> Bearer token), `/v2/payments/...`
(captures, authorisations, refunds, void), `GET /v2/checkout/orders/{id}` (the only place PayPal lists
a capture's refunds), and the control API under `/_sandbox/paypal/` (`PayPalSandboxControl`).

Idempotency follows PayPal: a POST's `PayPal-Request-Id` stores the first answer (the effect, or a
422 refusal) and replays it to every later call with that id; an id still executing is a 409
`PREVIOUS_REQUEST_IN_PROGRESS`; requests that fail validation (400) store nothing. Every answer
carries a `Paypal-Debug-Id` header.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from sandbox.background import DueLoop
from sandbox.control import ControlError, dispatch, json_body, refuse_remote
from sandbox.faults import FAULT_KINDS, Fault
from sandbox.paypal.certificates import VARIANTS
from sandbox.paypal.engine import PAYPAL_REFUND_BEHAVIORS, PayPalEngine, PayPalOutbox, new_debug_id
from sandbox.paypal.errors import PayPalApiError, authentication_failure, invalid_request, not_found
from sandbox.routing import SandboxRequest, SandboxResponse
from sandbox.server import SandboxServer
from sandbox.store import StoreTx
from sandbox.webhooks import WebhookSender

API_PREFIXES = ("/v1/oauth2/", "/v2/payments/", "/v2/checkout/orders/", "/v1/reporting/")
CONTROL_PREFIX = "/_sandbox/paypal/"
_PAYPAL_FAULT_KINDS = FAULT_KINDS - {"error_500_stored"}
Action = Callable[[StoreTx], tuple[int, dict[str, Any] | None]]
"""A validated POST's effect, run in the transaction that also stores its answer under the request id."""


def _error(err: PayPalApiError, debug_id: str) -> SandboxResponse:
    return SandboxResponse.json(err.status, err.body(debug_id))


def _minimal(resource: dict[str, Any]) -> dict[str, Any]:
    return {key: resource[key] for key in ("id", "status", "links") if key in resource}


class PayPalSandbox:
    """The PayPal handler: API, control API, settlement of pending refunds, webhook delivery."""

    def __init__(
        self,
        server: SandboxServer,
        *,
        client_id: str,
        client_secret: str,
        webhook_id: str,
        webhook_url: str | None,
        webhook_retry_delays: Sequence[float] = (0.5, 2.0, 5.0),
        webhook_timeout_seconds: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._server = server
        self._store = server.store
        self._faults = server.faults
        self._stats = server.stats
        self.client_id = client_id
        self._client_secret = client_secret
        self._webhook_url = webhook_url
        self._sleep = sleep
        self._scope = f"paypal:{client_id}"
        self.engine = PayPalEngine(
            server.store,
            webhook_id=webhook_id,
            base_url=lambda: server.url,
            webhook_url=lambda: self._webhook_url,
            on_event=lambda: self._webhooks.wake(),
            on_settlement_scheduled=lambda: self._settlements.wake(),
        )
        self._webhooks = WebhookSender(
            server.store,
            PayPalOutbox(self.engine),
            name="sandbox-paypal-webhooks",
            retry_delays=webhook_retry_delays,
            timeout_seconds=webhook_timeout_seconds,
        )
        self._settlements = DueLoop("sandbox-paypal-settlements", self.engine.settle_due)
        self._routes: list[tuple[str, re.Pattern[str], Callable[[SandboxRequest, list[str], str], Any]]] = [
            ("POST", re.compile(r"/v2/payments/captures/([^/]+)/refund"), self._refund),
            ("POST", re.compile(r"/v2/payments/authorizations/([^/]+)/void"), self._void),
            ("GET", re.compile(r"/v2/payments/captures/([^/]+)"), self._get_capture),
            ("GET", re.compile(r"/v2/payments/authorizations/([^/]+)"), self._get_authorization),
            ("GET", re.compile(r"/v2/payments/refunds/([^/]+)"), self._get_refund),
            ("GET", re.compile(r"/v2/checkout/orders/([^/]+)"), self._get_order),
            ("GET", re.compile(r"/v1/reporting/transactions"), self._search_transactions),
        ]
        self._control_routes: list[
            tuple[str, re.Pattern[str], Callable[[SandboxRequest, list[str]], Any]]
        ] = [
            ("POST", re.compile(r"captures"), self._seed_capture),
            ("POST", re.compile(r"authorizations"), self._seed_authorization),
            ("GET", re.compile(r"captures/([^/]+)/refunds"), self._list_refunds),
            ("POST", re.compile(r"captures/([^/]+)/reverse"), self._reverse),
            ("POST", re.compile(r"captures/([^/]+)/dashboard_refund"), self._dashboard_refund),
            ("POST", re.compile(r"captures/([^/]+)/dispute"), self._dispute),
            ("POST", re.compile(r"refunds/([^/]+)/settle"), self._settle),
            ("GET", re.compile(r"faults"), self._list_faults),
            ("POST", re.compile(r"faults"), self._add_fault),
            ("DELETE", re.compile(r"faults"), self._clear_faults),
            ("GET", re.compile(r"events"), self._events),
            ("GET", re.compile(r"config"), self._config),
            ("POST", re.compile(r"config"), self._set_config),
            ("POST", re.compile(r"sign"), self._sign),
            ("POST", re.compile(r"reset"), self._reset),
        ]

    # lifecycle ---------------------------------------------------------------------------------

    def start(self) -> PayPalSandbox:
        self._webhooks.start()
        self._settlements.start()
        return self

    def close(self) -> None:
        """Stop settlement and webhook delivery (call before the server closes its store)."""
        self._settlements.stop()
        self._webhooks.stop()

    @property
    def webhook_url(self) -> str | None:
        return self._webhook_url

    def set_webhook_url(self, url: str | None) -> None:
        self._webhook_url = url

    @property
    def cert_url(self) -> str:
        return self.engine.cert_url

    # dispatch ----------------------------------------------------------------------------------

    def handle(self, request: SandboxRequest) -> SandboxResponse:
        debug_id = new_debug_id()
        if request.path.startswith(CONTROL_PREFIX):
            response = self._control(request)
        else:
            response = self._api(request, debug_id)
        response.headers.setdefault("Paypal-Debug-Id", debug_id)
        return response

    def _api(self, request: SandboxRequest, debug_id: str) -> SandboxResponse:
        fault = self._faults.take("entry", request.method, request.path)
        if fault is not None:
            if fault.kind == "rate_limit":
                retry_after = f"{fault.retry_after_seconds:g}"
                return SandboxResponse.json(
                    429,
                    PayPalApiError(
                        429, "RATE_LIMIT_REACHED", "Too many requests. Blocked due to throttling."
                    ).body(debug_id),
                    {"Retry-After": retry_after},
                )
            return SandboxResponse.json(
                500,
                PayPalApiError(500, "INTERNAL_SERVER_ERROR", "An internal server error occurred.").body(
                    debug_id
                ),
            )
        if request.path == "/v1/oauth2/token" and request.method == "POST":
            return self._token(request)
        if not self._authenticated(request):
            return SandboxResponse.json(401, authentication_failure())
        for method, pattern, route in self._routes:
            match = pattern.fullmatch(request.path)
            if match and method == request.method:
                try:
                    result: SandboxResponse = route(request, list(match.groups()), debug_id)
                except PayPalApiError as err:
                    return _error(err, debug_id)
                return result
        return _error(not_found(f"{request.method} {request.path}"), debug_id)

    def _token(self, request: SandboxRequest) -> SandboxResponse:
        invalid = SandboxResponse.json(
            401, {"error": "invalid_client", "error_description": "Client Authentication failed"}
        )
        authorization = request.header("Authorization") or ""
        if not authorization.startswith("Basic "):
            return invalid
        try:
            client_id, _, secret = base64.b64decode(authorization[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return invalid
        if client_id != self.client_id or secret != self._client_secret:
            return invalid
        form = parse_qs(request.body.decode("utf-8", "replace"))
        if form.get("grant_type") != ["client_credentials"]:
            return SandboxResponse.json(
                400, {"error": "unsupported_grant_type", "error_description": "Grant Type is NULL"}
            )
        with self._store.transaction() as tx:
            return SandboxResponse.json(200, self.engine.issue_token(tx, client_id))

    def _authenticated(self, request: SandboxRequest) -> bool:
        authorization = request.header("Authorization") or ""
        if not authorization.startswith("Bearer "):
            return False
        with self._store.transaction() as tx:
            return self.engine.token_client(tx, authorization[7:]) == self.client_id

    # idempotent POSTs ----------------------------------------------------------------------------

    def _idempotent(self, request: SandboxRequest, debug_id: str, action: Action) -> SandboxResponse:
        key = request.header("PayPal-Request-Id")
        if key:
            with self._store.transaction() as tx:
                record = tx.idempotency_get(self._scope, key)
                if record is None:
                    tx.idempotency_begin(self._scope, key, "", debug_id)
            if record is not None:
                if record.state == "executing":
                    return _error(
                        PayPalApiError(
                            409,
                            "RESOURCE_CONFLICT",
                            "A previous request with this PayPal-Request-Id is still in progress.",
                            "PREVIOUS_REQUEST_IN_PROGRESS",
                        ),
                        debug_id,
                    )
                self._stats.record_replay(request.method, request.path)
                return SandboxResponse(record.status_code or 500, record.body or b"")
        fault = self._faults.take("execute", request.method, request.path)
        if fault is not None and fault.kind == "slow":
            self._sleep(fault.delay_ms / 1000)
        try:
            with self._store.transaction() as tx:
                status, payload = action(tx)
                body = json.dumps(payload).encode() if payload is not None else b""
                if key:
                    tx.idempotency_complete(self._scope, key, status, body)
        except PayPalApiError as err:
            response = _error(err, debug_id)
            with self._store.transaction() as tx:
                if key and err.status == 422:
                    # The endpoint ran and refused: the refusal is this request id's answer.
                    tx.idempotency_complete(self._scope, key, err.status, response.body)
                elif key:
                    tx.idempotency_forget(self._scope, key)
            return response
        except BaseException:
            if key:
                with self._store.transaction() as tx:
                    tx.idempotency_forget(self._scope, key)
            raise
        if fault is not None and fault.kind == "lose_response":
            return SandboxResponse(200, drop_connection=True)
        return SandboxResponse(status, body)

    @staticmethod
    def _representation(request: SandboxRequest) -> bool:
        return "return=representation" in (request.header("Prefer") or "")

    @staticmethod
    def _json_body(request: SandboxRequest) -> dict[str, Any]:
        if not request.body.strip():
            return {}
        # INVALID_PARAMETER_SYNTAX: the issue PayPal publishes for a body it cannot read (captures.refund-400)
        try:
            body = json.loads(request.body)
        except ValueError as err:
            raise invalid_request(
                "INVALID_PARAMETER_SYNTAX", f"The request JSON is not well formed: {err}"
            ) from err
        if not isinstance(body, dict):
            raise invalid_request("INVALID_PARAMETER_SYNTAX", "The request body must be a JSON object.")
        return body

    def _refund(self, request: SandboxRequest, args: list[str], debug_id: str) -> SandboxResponse:
        body = self._json_body(request)  # validated before the request id is taken
        full = self._representation(request)
        request_id = request.header("PayPal-Request-Id")

        def action(tx: StoreTx) -> tuple[int, dict[str, Any] | None]:
            refund = self.engine.refund(tx, args[0], body, request_id)
            resource = self.engine.refund_json(tx, refund)
            return 201, resource if full else _minimal(resource)

        return self._idempotent(request, debug_id, action)

    def _void(self, request: SandboxRequest, args: list[str], debug_id: str) -> SandboxResponse:
        full = self._representation(request)

        def action(tx: StoreTx) -> tuple[int, dict[str, Any] | None]:
            authorization = self.engine.void(tx, args[0])
            return (200, self.engine.authorization_json(authorization)) if full else (204, None)

        return self._idempotent(request, debug_id, action)

    # reads -------------------------------------------------------------------------------------

    def _get_capture(self, request: SandboxRequest, args: list[str], debug_id: str) -> SandboxResponse:
        with self._store.transaction() as tx:
            capture = self.engine.get_capture(tx, args[0])
            if capture is None:
                raise not_found(f"capture {args[0]}")
            return SandboxResponse.json(200, self.engine.capture_json(tx, capture))

    def _get_authorization(self, request: SandboxRequest, args: list[str], debug_id: str) -> SandboxResponse:
        with self._store.transaction() as tx:
            authorization = self.engine.get_authorization(tx, args[0])
        if authorization is None:
            raise not_found(f"authorization {args[0]}")
        return SandboxResponse.json(200, self.engine.authorization_json(authorization))

    def _get_refund(self, request: SandboxRequest, args: list[str], debug_id: str) -> SandboxResponse:
        with self._store.transaction() as tx:
            refund = self.engine.get_refund(tx, args[0])
            if refund is None:
                raise not_found(f"refund {args[0]}")
            return SandboxResponse.json(200, self.engine.refund_json(tx, refund))

    def _get_order(self, request: SandboxRequest, args: list[str], debug_id: str) -> SandboxResponse:
        with self._store.transaction() as tx:
            order = self.engine.order_json(tx, args[0])
        if order is None:
            raise not_found(f"order {args[0]}")
        return SandboxResponse.json(200, order)

    def _search_transactions(
        self, request: SandboxRequest, args: list[str], debug_id: str
    ) -> SandboxResponse:
        """Transaction Search, for merchant refunds (`transaction_type=T1107`): a range of at most 31
        days is required, as PayPal requires it; pages of up to 500, the first being 1."""
        query = {key: values[0] for key, values in parse_qs(request.query).items()}
        try:
            start = datetime.fromisoformat(query["start_date"].replace("Z", "+00:00"))
            end = datetime.fromisoformat(query["end_date"].replace("Z", "+00:00"))
            page, page_size = int(query.get("page", "1")), int(query.get("page_size", "100"))
        except (KeyError, ValueError) as err:
            raise invalid_request(
                "INVALID_REQUEST", "start_date and end_date are required (RFC 3339)."
            ) from err
        if end <= start or (end - start).days > 31 or not 1 <= page_size <= 500 or page < 1:
            raise invalid_request("INVALID_REQUEST", "The date range is at most 31 days; page_size 1 to 500.")
        if query.get("transaction_type", "T1107") != "T1107":
            raise invalid_request("INVALID_REQUEST", "The sandbox lists merchant refunds (T1107) only.")
        with self._store.transaction() as tx:
            body = self.engine.search_refunds(tx, _ms(start), _ms(end), page, page_size)
        return SandboxResponse.json(200, body)

    # control API -------------------------------------------------------------------------------

    def _control(self, request: SandboxRequest) -> SandboxResponse:
        if (refused := refuse_remote(request)) is not None:
            return refused
        sub_path = request.path.removeprefix(CONTROL_PREFIX)
        if sub_path == "cert.pem" and request.method == "GET":
            return SandboxResponse(200, self.engine.signing.cert_pem, content_type="application/x-pem-file")
        if (variant := re.fullmatch(r"certs/([a-z_0-9-]{1,64})\.pem", sub_path)) and request.method == "GET":
            chain = self.engine.variant_chain(variant.group(1))
            if chain is None:
                return SandboxResponse.json(404, {"error": f"no certificate {variant.group(1)}"})
            return SandboxResponse(200, chain, content_type="application/x-pem-file")
        try:
            return dispatch(self._control_routes, request, sub_path)
        except PayPalApiError as err:
            return _error(err, new_debug_id())

    @staticmethod
    def _optional_id(body: dict[str, Any]) -> str | None:
        value = body.get("id")
        if value is not None and (not isinstance(value, str) or not re.fullmatch(r"[A-Z0-9-]{1,40}", value)):
            raise ControlError(400, "id must be upper-case letters, digits and dashes")
        return value

    def _seed_capture(self, request: SandboxRequest, args: list[str]) -> Any:
        body = json_body(request)
        behavior = body.get("refund_behavior", "completed")
        if behavior not in PAYPAL_REFUND_BEHAVIORS:
            raise ControlError(400, f"refund_behavior must be one of {sorted(PAYPAL_REFUND_BEHAVIORS)}")
        settle_after_ms = body.get("settle_after_ms", 1000)
        if not isinstance(settle_after_ms, int) or settle_after_ms < 0:
            raise ControlError(400, "settle_after_ms must be a non-negative integer")
        receivable, rates = (
            body.get("receivable_currency"),
            [body.get("exchange_rate"), body.get("refund_exchange_rate")],
        )
        if receivable is not None and (
            not isinstance(receivable, str) or len(receivable) != 3 or not _is_rate(rates[0])
        ):
            raise ControlError(
                400, "receivable_currency (ISO code) needs exchange_rate, a positive decimal string"
            )
        if rates[1] is not None and not _is_rate(rates[1]):
            raise ControlError(400, "refund_exchange_rate must be a positive decimal string")
        with self._store.transaction() as tx:
            return self.engine.seed_capture(
                tx,
                value=body.get("amount"),
                currency=body.get("currency"),
                capture_id=self._optional_id(body),
                refund_behavior=behavior,
                settle_after_ms=settle_after_ms,
                invoice_id=body.get("invoice_id"),
                custom_id=body.get("custom_id"),
                receivable_currency=receivable.upper() if receivable else None,
                capture_rate=rates[0] if receivable else None,
                refund_rate=rates[1] if receivable else None,
                returns_fees=body.get("returns_fees") is True,
            )

    def _seed_authorization(self, request: SandboxRequest, args: list[str]) -> Any:
        body = json_body(request)
        with self._store.transaction() as tx:
            return self.engine.seed_authorization(
                tx,
                value=body.get("amount"),
                currency=body.get("currency"),
                authorization_id=self._optional_id(body),
            )

    def _list_refunds(self, request: SandboxRequest, args: list[str]) -> Any:
        """Every refund and reversal of a capture, oldest first, with the PayPal-Request-Id it came with."""
        with self._store.transaction() as tx:
            if self.engine.get_capture(tx, args[0]) is None:
                raise not_found(f"capture {args[0]}")
            refunds = [
                {
                    **self.engine.refund_json(tx, refund),
                    "kind": refund.kind,
                    "paypal_request_id": refund.request_id,
                }
                for refund in self.engine.refunds_of(tx, args[0])
            ]
        return {"refunds": refunds}

    def _settle(self, request: SandboxRequest, args: list[str]) -> Any:
        body = json_body(request)
        with self._store.transaction() as tx:
            refund = self.engine.settle(tx, args[0], str(body.get("status", "COMPLETED")), body.get("reason"))
            return self.engine.refund_json(tx, refund)

    def _dashboard_refund(self, request: SandboxRequest, args: list[str]) -> Any:
        """A refund made by hand in PayPal's dashboard: no PayPal-Request-Id, no custom_id."""
        body = json_body(request)
        with self._store.transaction() as tx:
            capture = self.engine.get_capture(tx, args[0])
            if capture is None:
                raise ControlError(404, f"no capture {args[0]}")
            amount = {"value": str(body.get("amount")), "currency_code": capture.currency}
            refund = self.engine.refund(tx, capture.id, {"amount": amount}, None)
            return self.engine.refund_json(tx, refund)

    def _reverse(self, request: SandboxRequest, args: list[str]) -> Any:
        body = json_body(request)
        with self._store.transaction() as tx:
            reversal = self.engine.reverse(tx, args[0], body.get("amount"))
            return self.engine.refund_json(tx, reversal)

    def _dispute(self, request: SandboxRequest, args: list[str]) -> Any:
        body = json_body(request)
        with self._store.transaction() as tx:
            reason = str(body.get("reason") or "MERCHANDISE_OR_SERVICE_NOT_RECEIVED")
            return {"dispute_id": self.engine.dispute(tx, args[0], reason)}

    def _list_faults(self, request: SandboxRequest, args: list[str]) -> Any:
        return {"faults": self._faults.snapshot()}

    def _add_fault(self, request: SandboxRequest, args: list[str]) -> Any:
        body = json_body(request)
        if body.get("kind") not in _PAYPAL_FAULT_KINDS:
            raise ControlError(400, f"kind must be one of {sorted(_PAYPAL_FAULT_KINDS)}")
        try:
            fault = Fault.from_json({"path_prefix": "/v2/payments/", **body})
        except ValueError as err:
            raise ControlError(400, str(err)) from err
        self._faults.add(fault)
        return {"faults": self._faults.snapshot()}

    def _clear_faults(self, request: SandboxRequest, args: list[str]) -> Any:
        self._faults.clear()  # the registry is the server's: this clears every PSP's faults
        return {"faults": []}

    def _events(self, request: SandboxRequest, args: list[str]) -> Any:
        with self._store.transaction() as tx:
            return self.engine.events(tx)

    def _config(self, request: SandboxRequest, args: list[str]) -> Any:
        return {
            "webhook_url": self._webhook_url,
            "webhook_id": self.engine.webhook_id,
            "cert_url": self.engine.cert_url,
            "client_id": self.client_id,
        }

    def _set_config(self, request: SandboxRequest, args: list[str]) -> Any:
        body = json_body(request)
        if "webhook_url" in body:
            url = body["webhook_url"]
            if url is not None and not (isinstance(url, str) and re.match(r"https?://", url)):
                raise ControlError(400, "webhook_url must be an http(s) URL or null")
            self._webhook_url = url
        return self._config(request, args)

    def _sign(self, request: SandboxRequest, args: list[str]) -> Any:
        """Transmission headers for an arbitrary body, as PayPal would send them (tests, demos)."""
        body = json_body(request)
        raw = body.get("body")
        webhook_id = body.get("webhook_id")
        sent_at = body.get("sent_at")
        certificate = body.get("certificate")
        if not isinstance(raw, str) or not all(
            isinstance(v, str | None) for v in (webhook_id, sent_at, certificate)
        ):
            raise ControlError(400, "body (and webhook_id, sent_at, certificate if given) must be strings")
        if certificate is not None and certificate not in VARIANTS:
            raise ControlError(400, f"certificate must be one of {sorted(VARIANTS)}")
        headers = self.engine.sign(raw, webhook_id=webhook_id, sent_at=sent_at, certificate=certificate)
        return {"headers": headers}

    def _reset(self, request: SandboxRequest, args: list[str]) -> Any:
        with self._store.transaction() as tx:
            self.engine.reset(tx)
        return {"ok": True}


def mount_paypal(
    server: SandboxServer,
    *,
    client_id: str = "paypal_sandbox_client",
    client_secret: str = "paypal_sandbox_secret",
    webhook_id: str = "WH-SANDBOX",
    webhook_url: str | None = None,
    webhook_retry_delays: Sequence[float] = (0.5, 2.0, 5.0),
    webhook_timeout_seconds: float = 5.0,
) -> PayPalSandbox:
    """Serve PayPal on `server` (started or not) and start its background work; `close()` it first."""
    paypal = PayPalSandbox(
        server,
        client_id=client_id,
        client_secret=client_secret,
        webhook_id=webhook_id,
        webhook_url=webhook_url,
        webhook_retry_delays=webhook_retry_delays,
        webhook_timeout_seconds=webhook_timeout_seconds,
    )
    for prefix in API_PREFIXES:
        server.router.mount(prefix, paypal)
    server.router.mount(CONTROL_PREFIX, paypal, count_calls=False)
    server.on_stop(paypal.close)
    return paypal.start()


def _is_rate(value: object) -> bool:
    """A PayPal exchange rate: a positive decimal string."""
    from decimal import Decimal, InvalidOperation

    if not isinstance(value, str) or len(value) > 32:
        return False
    try:
        rate = Decimal(value)
    except InvalidOperation:
        return False
    return rate.is_finite() and rate > 0


def _ms(at: datetime) -> int:
    """Milliseconds since the epoch; a time without an offset is UTC."""
    moment = at if at.tzinfo else at.replace(tzinfo=UTC)
    return int(moment.timestamp()) * 1000 + moment.microsecond // 1000
