"""Stripe's HTTP API as the official SDK speaks it: `/v1/...`, form bodies, Bearer keys, idempotency.

Idempotency follows Stripe: per API key and `Idempotency-Key`, the first response is
stored once the endpoint began executing (a 500 included) and replayed with `Idempotent-Replayed:
true`; other parameters under the same key are an `idempotency_error`; a key still executing is a 409;
requests that fail validation store nothing.

`ControlApi` is the sandbox's own control API under `/_sandbox/` (Stripe's seeding, settling and
events, and the server-wide health, faults, stats and reset): JSON in and out, no authentication,
loopback clients only; `SandboxControl` (`sandbox.stripe.control`) is its client.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, cast
from urllib.parse import parse_qs, parse_qsl, unquote

from sandbox.control import ControlError, ControlRoute, dispatch, json_body, refuse_remote
from sandbox.faults import Fault, FaultRegistry
from sandbox.routing import SandboxRequest, SandboxResponse
from sandbox.stats import CallStats
from sandbox.store import SandboxStore, Settlement, StoreTx
from sandbox.stripe.engine import REFUND_BEHAVIORS, PaymentSeed, RefundBehavior, StripeEngine
from sandbox.stripe.objects import StripeApiError, list_json

Params = dict[str, Any]
Action = Callable[[StoreTx], dict[str, Any]]
"""What a validated request does, run inside the transaction that also stores its response."""

_REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer")
_CANCEL_REASONS = ("duplicate", "fraudulent", "requested_by_customer", "abandoned")
_CAPTURE_METHODS = ("automatic", "automatic_async", "manual")


# form decoding -------------------------------------------------------------------------------

_KEY = re.compile(r"([^\[\]]+)((?:\[[^\[\]]*\])*)")
_PART = re.compile(r"\[([^\[\]]*)\]")


def parse_form(encoded: str) -> Params:
    """Decode Stripe's form encoding: `metadata[k]=v`, `expand[0]=x`, `expand[]=x`, nesting."""
    result: Params = {}
    for raw_key, value in parse_qsl(encoded, keep_blank_values=True):
        match = _KEY.fullmatch(raw_key)
        parts = [match.group(1), *_PART.findall(match.group(2))] if match else [raw_key]
        _insert(result, parts, value)
    return {key: value if key == "metadata" else _listify(value) for key, value in result.items()}


def _insert(node: dict[str, Any], parts: list[str], value: str) -> None:
    key = parts[0] or str(len(node))
    if len(parts) == 1:
        node[key] = value
        return
    child = node.get(key)
    if not isinstance(child, dict):
        child = {}
        node[key] = child
    _insert(child, parts[1:], value)


def _listify(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    converted = {key: _listify(item) for key, item in value.items()}
    if converted and all(key.isdigit() for key in converted):
        return [converted[key] for key in sorted(converted, key=int)]
    return converted


# parameter validation (failures store nothing) -----------------------------------------------


def _check_known(params: Params, allowed: set[str]) -> None:
    for name in params:
        if name not in allowed:
            raise StripeApiError(
                400, f"Received unknown parameter: {name}", code="parameter_unknown", param=name
            )


def _str(params: Params, name: str, *, required: bool = False) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise StripeApiError(
                400, f"Missing required param: {name}.", code="parameter_missing", param=name
            )
        return None
    if not isinstance(value, str):
        raise StripeApiError(400, f"Invalid string: {value!r}", code="parameter_invalid_string", param=name)
    return value


def _int(params: Params, name: str, *, required: bool = False, minimum: int = 1) -> int | None:
    raw = _str(params, name, required=required)
    if raw is None:
        return None
    if not re.fullmatch(r"-?\d+", raw):
        raise StripeApiError(400, f"Invalid integer: {raw}", code="parameter_invalid_integer", param=name)
    value = int(raw)
    if value < minimum:
        raise StripeApiError(
            400,
            f"This value must be greater than or equal to {minimum}.",
            code="parameter_invalid_integer",
            param=name,
        )
    return value


def _bool(params: Params, name: str, default: bool) -> bool:
    raw = _str(params, name)
    if raw is None:
        return default
    if raw not in ("true", "false"):
        raise StripeApiError(400, f"Invalid boolean: {raw}", code="parameter_invalid_boolean", param=name)
    return raw == "true"


def _choice(params: Params, name: str, choices: tuple[str, ...]) -> str | None:
    value = _str(params, name)
    if value is not None and value not in choices:
        raise StripeApiError(
            400,
            f"Invalid {name}: must be one of {', '.join(choices)}",
            param=name,
        )
    return value


def _metadata(params: Params) -> dict[str, str]:
    value = params.get("metadata")
    if value is None or value == "":
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise StripeApiError(400, "Invalid metadata: must be a hash of strings", param="metadata")
    for key, item in value.items():
        if len(key) > 40 or len(item) > 500:
            raise StripeApiError(
                400, "Metadata keys are limited to 40 characters, values to 500.", param="metadata"
            )
    return {key: item for key, item in value.items() if item != ""}


def _expand(params: Params) -> set[str]:
    value = params.get("expand")
    if value is None:
        return set()
    items = value if isinstance(value, list) else [value]
    return {item for item in items if isinstance(item, str)}


def _currency(params: Params) -> str:
    currency = _str(params, "currency", required=True) or ""
    if not re.fullmatch(r"[A-Za-z]{3}", currency):
        raise StripeApiError(400, f"Invalid currency: {currency}.", param="currency")
    return currency.lower()


# routes --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    prepare: Callable[[Params, list[str], str | None], Action]
    """Validate (raising StripeApiError stores nothing) and return the action to execute."""


class StripeApi:
    """Handler for `/v1/`: authenticate, apply faults, validate, then execute idempotently."""

    def __init__(
        self,
        engine: StripeEngine,
        store: SandboxStore,
        faults: FaultRegistry,
        stats: CallStats,
        api_key: str,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._engine = engine
        self._store = store
        self._faults = faults
        self._stats = stats
        self._api_key = api_key
        self._scope = "stripe:" + hashlib.sha256(api_key.encode()).hexdigest()[:16]
        self._sleep = sleep
        self._routes = [
            _Route("POST", re.compile(r"/v1/payment_intents"), self._create_intent),
            _Route("GET", re.compile(r"/v1/payment_intents/([^/]+)"), self._get_intent),
            _Route("POST", re.compile(r"/v1/payment_intents/([^/]+)/cancel"), self._cancel_intent),
            _Route("POST", re.compile(r"/v1/payment_intents/([^/]+)/capture"), self._capture_intent),
            _Route("GET", re.compile(r"/v1/charges/([^/]+)"), self._get_charge),
            _Route("POST", re.compile(r"/v1/refunds"), self._create_refund),
            _Route("GET", re.compile(r"/v1/refunds"), self._list_refunds),
            _Route("GET", re.compile(r"/v1/refunds/([^/]+)"), self._get_refund),
        ]

    # pipeline --------------------------------------------------------------------------------

    def handle(self, request: SandboxRequest) -> SandboxResponse:
        if not self._authorized(request):
            # Stripe publishes four error types (api_errors in tests/contracts/specs/stripe.json): a bad
            # key, like a rate limit, is an invalid request; the status (401, 429) tells them apart, and
            # the SDK reads the status
            return self._error(
                StripeApiError(
                    401, "Invalid API Key provided. The sandbox expects its configured secret key."
                )
            )
        fault = self._faults.take("entry", request.method, request.path)
        if fault is not None:
            return self._entry_fault(fault)
        try:
            action = self._prepare(request)
        except StripeApiError as err:
            return self._error(err)
        key = request.header("idempotency-key") if request.method == "POST" else None
        if key:
            return self._execute_idempotent(request, key, action)
        return self._execute(request, action)

    def _authorized(self, request: SandboxRequest) -> bool:
        header = request.header("authorization") or ""
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() == "bearer":
            return credentials.strip() == self._api_key
        if scheme.lower() == "basic":
            try:
                user = base64.b64decode(credentials).decode().split(":", 1)[0]
            except ValueError:
                return False
            return user == self._api_key
        return False

    def _prepare(self, request: SandboxRequest) -> Action:
        for route in self._routes:
            match = route.pattern.fullmatch(request.path)
            if match and route.method == request.method:
                encoded = request.body.decode() if request.method == "POST" else request.query
                args = [unquote(group) for group in match.groups()]
                key = request.header("idempotency-key") if request.method == "POST" else None
                return route.prepare(parse_form(encoded), args, key)
        raise StripeApiError(404, f"Unrecognized request URL ({request.method}: {request.path}).")

    def _entry_fault(self, fault: Fault) -> SandboxResponse:
        match fault.kind:
            case "rate_limit":
                retry_after = f"{fault.retry_after_seconds:g}"
                return self._error(
                    StripeApiError(
                        429,
                        "Too many requests hit the API too quickly (sandbox fault).",
                        code="rate_limit",
                        headers={"Retry-After": retry_after},
                    )
                )
            case "error_500":
                return self._error(self._api_error())
            case _:
                raise ValueError(f"{fault.kind} is not an entry fault")

    @staticmethod
    def _api_error() -> StripeApiError:
        return StripeApiError(500, "An unknown error occurred (sandbox fault).", type="api_error")

    def _run(self, tx: StoreTx, action: Action) -> tuple[int, bytes]:
        try:
            with tx.savepoint():
                return 200, json.dumps(action(tx)).encode()
        except StripeApiError as err:
            return err.status, json.dumps(err.body()).encode()

    def _execute(self, request: SandboxRequest, action: Action) -> SandboxResponse:
        fault = self._faults.take("execute", request.method, request.path)
        if fault is not None and fault.kind == "slow":
            self._sleep(fault.delay_ms / 1000)
        if fault is not None and fault.kind == "error_500_stored":
            return self._error(self._api_error())
        with self._store.transaction() as tx:
            status, body = self._run(tx, action)
        response = SandboxResponse(status, body)
        response.drop_connection = fault is not None and fault.kind == "lose_response"
        return response

    def _execute_idempotent(self, request: SandboxRequest, key: str, action: Action) -> SandboxResponse:
        fingerprint = hashlib.sha256(
            f"{request.method} {request.path} ".encode()
            + json.dumps(parse_form(request.body.decode()), sort_keys=True).encode()
        ).hexdigest()
        with self._store.transaction() as tx:
            record = tx.idempotency_get(self._scope, key)
            if record is None:
                tx.idempotency_begin(self._scope, key, fingerprint, request.request_id)
        headers = {"Idempotency-Key": key}
        if record is not None:
            if record.fingerprint != fingerprint:
                return self._error(
                    StripeApiError(
                        400,
                        "Keys for idempotent requests can only be used with the same parameters"
                        " they were first used with. Try using a key other than"
                        f" '{key}' if you meant to execute a different request.",
                        type="idempotency_error",
                    )
                )
            if record.state != "done" or record.status_code is None or record.body is None:
                return self._error(
                    StripeApiError(
                        409,
                        "There is currently another in-progress request using this idempotent"
                        f" key (that probably means you submitted twice). Key: {key}",
                        code="idempotency_key_in_use",
                    )
                )
            self._stats.record_replay(request.method, request.path)
            headers |= {"Idempotent-Replayed": "true", "Original-Request": record.request_id}
            return SandboxResponse(record.status_code, record.body, headers)

        fault = self._faults.take("execute", request.method, request.path)
        try:
            if fault is not None and fault.kind == "slow":
                self._sleep(fault.delay_ms / 1000)
            with self._store.transaction() as tx:
                if fault is not None and fault.kind == "error_500_stored":
                    status, body = 500, json.dumps(self._api_error().body()).encode()
                else:
                    status, body = self._run(tx, action)
                tx.idempotency_complete(self._scope, key, status, body)
        except Exception:
            # A sandbox bug, not Stripe behaviour: free the key so the client may try again.
            with self._store.transaction() as tx:
                tx.idempotency_forget(self._scope, key)
            raise
        response = SandboxResponse(status, body, headers)
        response.drop_connection = fault is not None and fault.kind == "lose_response"
        return response

    @staticmethod
    def _error(err: StripeApiError) -> SandboxResponse:
        return SandboxResponse.json(err.status, err.body(), err.headers)

    # payment intents -------------------------------------------------------------------------

    def _create_intent(self, params: Params, _: list[str], key: str | None) -> Action:
        _check_known(
            params,
            {
                "amount", "currency", "capture_method", "confirm", "metadata", "payment_method",
                "payment_method_types", "description", "customer", "expand", "return_url",
                "automatic_payment_methods", "receipt_email", "off_session",
            },
        )  # fmt: skip
        amount = _int(params, "amount", required=True) or 0
        currency = _currency(params)
        capture_method = _choice(params, "capture_method", _CAPTURE_METHODS) or "automatic"
        confirm = _bool(params, "confirm", False)
        metadata = _metadata(params)
        expand = _expand(params)

        def action(tx: StoreTx) -> dict[str, Any]:
            payment = self._engine.create_intent(
                tx,
                amount=amount,
                currency=currency,
                capture_method=capture_method,
                confirm=confirm,
                metadata=metadata,
            )
            return self._engine.intent_json(tx, payment, expand)

        return action

    def _get_intent(self, params: Params, args: list[str], key: str | None) -> Action:
        _check_known(params, {"expand", "client_secret"})
        expand = _expand(params)

        def action(tx: StoreTx) -> dict[str, Any]:
            return self._engine.intent_json(tx, self._engine.require_intent(tx, args[0]), expand)

        return action

    def _cancel_intent(self, params: Params, args: list[str], key: str | None) -> Action:
        _check_known(params, {"cancellation_reason", "expand"})
        reason = _choice(params, "cancellation_reason", _CANCEL_REASONS)
        expand = _expand(params)

        def action(tx: StoreTx) -> dict[str, Any]:
            payment = self._engine.cancel_intent(tx, args[0], reason)
            return self._engine.intent_json(tx, payment, expand)

        return action

    def _capture_intent(self, params: Params, args: list[str], key: str | None) -> Action:
        _check_known(params, {"amount_to_capture", "expand", "metadata"})
        amount = _int(params, "amount_to_capture")
        expand = _expand(params)

        def action(tx: StoreTx) -> dict[str, Any]:
            payment = self._engine.capture_intent(tx, args[0], amount)
            return self._engine.intent_json(tx, payment, expand)

        return action

    def _get_charge(self, params: Params, args: list[str], key: str | None) -> Action:
        _check_known(params, {"expand"})
        expand = _expand(params)
        return lambda tx: self._engine.charge_json(tx, args[0], expand)

    # refunds ---------------------------------------------------------------------------------

    def _create_refund(self, params: Params, _: list[str], key: str | None) -> Action:
        _check_known(
            params,
            {
                "amount", "charge", "payment_intent", "reason", "metadata", "expand", "currency",
                "customer", "instructions_email", "origin", "refund_application_fee",
                "reverse_transfer",
            },
        )  # fmt: skip
        payment_intent = _str(params, "payment_intent")
        charge = _str(params, "charge")
        if payment_intent is None and charge is None:
            raise StripeApiError(
                400,
                "One of the following params should be provided for this request: payment_intent or charge.",
                code="parameter_missing",
            )
        if payment_intent is not None and charge is not None:
            raise StripeApiError(400, "You can only specify one of payment_intent or charge.", param="charge")
        amount = _int(params, "amount")
        reason = _choice(params, "reason", _REFUND_REASONS)
        metadata = _metadata(params)
        expand = _expand(params)

        def action(tx: StoreTx) -> dict[str, Any]:
            refund = self._engine.create_refund(
                tx,
                payment_intent=payment_intent,
                charge=charge,
                amount=amount,
                reason=reason,
                metadata=metadata,
                idempotency_key=key,
            )
            return self._engine.refund_json(tx, refund, expand)

        return action

    def _get_refund(self, params: Params, args: list[str], key: str | None) -> Action:
        _check_known(params, {"expand"})
        expand = _expand(params)
        return lambda tx: self._engine.refund_json(tx, self._engine.require_refund(tx, args[0]), expand)

    def _list_refunds(self, params: Params, _: list[str], key: str | None) -> Action:
        _check_known(
            params,
            {"payment_intent", "charge", "limit", "starting_after", "ending_before", "expand", "created"},
        )
        payment_intent = _str(params, "payment_intent")
        charge = _str(params, "charge")
        limit = _int(params, "limit") or 10
        if limit > 100:
            raise StripeApiError(400, "This value must be less than or equal to 100.", param="limit")
        starting_after = _str(params, "starting_after")
        ending_before = _str(params, "ending_before")
        item_expand = {e.removeprefix("data.") for e in _expand(params) if e.startswith("data.")}

        def action(tx: StoreTx) -> dict[str, Any]:
            payment_id: str | None = None
            if payment_intent is not None:
                payment_id = self._engine.require_intent(tx, payment_intent, "payment_intent").id
            elif charge is not None:
                payment = tx.get_payment_by_charge(charge)
                if payment is None:
                    raise StripeApiError(
                        404, f"No such charge: '{charge}'", code="resource_missing", param="charge"
                    )
                payment_id = payment.id
            after = self._cursor(tx, starting_after, "starting_after")
            before = self._cursor(tx, ending_before, "ending_before")
            refunds, has_more = tx.list_refunds(
                payment_id=payment_id, limit=limit, after_seq=after, before_seq=before
            )
            data = [self._engine.refund_json(tx, refund, item_expand) for refund in refunds]
            return list_json("/v1/refunds", data, has_more)

        return action

    def _cursor(self, tx: StoreTx, refund_id: str | None, param: str) -> int | None:
        if refund_id is None:
            return None
        refund = tx.get_refund(refund_id)
        if refund is None:
            raise StripeApiError(400, f"No such refund: '{refund_id}'", code="resource_missing", param=param)
        return refund.seq


# the control API (`/_sandbox/`) -------------------------------------------------------------------


class ControlApi:
    def __init__(
        self,
        engine: StripeEngine,
        store: SandboxStore,
        faults: FaultRegistry,
        stats: CallStats,
        *,
        get_webhook_url: Callable[[], str | None],
        set_webhook_url: Callable[[str | None], None],
    ) -> None:
        self._engine = engine
        self._store = store
        self._faults = faults
        self._stats = stats
        self._get_webhook_url = get_webhook_url
        self._set_webhook_url = set_webhook_url
        self._routes: list[ControlRoute] = [
            ("GET", re.compile(r"/_sandbox/health"), self._health),
            ("POST", re.compile(r"/_sandbox/payments"), self._seed_payment),
            ("POST", re.compile(r"/_sandbox/payments/([^/]+)/early_fraud_warning"), self._fraud_warning),
            ("POST", re.compile(r"/_sandbox/payments/([^/]+)/dispute"), self._dispute),
            ("GET", re.compile(r"/_sandbox/refunds"), self._refunds),
            ("POST", re.compile(r"/_sandbox/refunds/([^/]+)/settle"), self._settle),
            ("POST", re.compile(r"/_sandbox/refunds/([^/]+)/fail"), self._fail_late),
            ("GET", re.compile(r"/_sandbox/events"), self._events),
            ("GET", re.compile(r"/_sandbox/config"), self._config),
            ("POST", re.compile(r"/_sandbox/config"), self._set_config),
            ("GET", re.compile(r"/_sandbox/faults"), self._list_faults),
            ("POST", re.compile(r"/_sandbox/faults"), self._add_fault),
            ("DELETE", re.compile(r"/_sandbox/faults"), self._clear_faults),
            ("GET", re.compile(r"/_sandbox/stats"), self._stats_snapshot),
            ("POST", re.compile(r"/_sandbox/reset"), self._reset),
        ]

    def handle(self, request: SandboxRequest) -> SandboxResponse:
        if (refused := refuse_remote(request)) is not None:
            return refused
        try:
            return dispatch(self._routes, request, request.path)
        except StripeApiError as err:
            return SandboxResponse.json(err.status, err.body())

    @staticmethod
    def _query(request: SandboxRequest, name: str) -> str | None:
        values = parse_qs(request.query).get(name)
        return values[0] if values else None

    def _health(self, request: SandboxRequest, args: list[str]) -> Any:
        return {"ok": True}

    def _seed_payment(self, request: SandboxRequest, args: list[str]) -> Any:
        body = json_body(request)
        provider = body.get("provider", "stripe")
        if provider != "stripe":
            raise ControlError(400, f"seeding {provider} payments is not supported yet")
        amount, currency = body.get("amount"), body.get("currency")
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            raise ControlError(400, "amount must be a positive integer in minor units")
        if not isinstance(currency, str) or not re.fullmatch(r"[A-Za-z]{3}", currency):
            raise ControlError(400, "currency must be a three-letter code")
        payment_id = body.get("id")
        if payment_id is not None and (
            not isinstance(payment_id, str) or not re.fullmatch(r"pi_[A-Za-z0-9_]{1,100}", payment_id)
        ):
            raise ControlError(400, "id must look like pi_<letters, digits, underscores>")
        behavior = body.get("refund_behavior", "succeeded")
        if behavior not in REFUND_BEHAVIORS:
            raise ControlError(400, f"refund_behavior must be one of {sorted(REFUND_BEHAVIORS)}")
        settle_after_ms = body.get("settle_after_ms", 1000)
        if not isinstance(settle_after_ms, int) or settle_after_ms < 0:
            raise ControlError(400, "settle_after_ms must be a non-negative integer")
        metadata = body.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise ControlError(400, "metadata must be an object of strings")
        settlement = _settlement(body, currency)
        intent, created = self._engine.seed_payment(
            PaymentSeed(
                amount=amount,
                currency=currency,
                captured=bool(body.get("captured", True)),
                id=payment_id,
                refund_behavior=cast(RefundBehavior, behavior),
                settle_after_ms=settle_after_ms,
                metadata={str(k): str(v) for k, v in metadata.items()},
                settlement=settlement,
            )
        )
        return {"payment_intent": intent, "charge": intent["latest_charge"], "created": created}

    def _fraud_warning(self, request: SandboxRequest, args: list[str]) -> Any:
        """Radar warns of fraud on the payment: a signed `radar.early_fraud_warning.created` webhook
        (`.updated` when the body names the warning again)."""
        body = json_body(request)
        fraud_type = body.get("fraud_type", "made_with_stolen_card")
        actionable = body.get("actionable", True)
        warning_id = body.get("id")
        if not isinstance(fraud_type, str) or not isinstance(actionable, bool):
            raise ControlError(400, "fraud_type is a string, actionable a boolean")
        if warning_id is not None and (
            not isinstance(warning_id, str) or not re.fullmatch(r"issfr_[A-Za-z0-9]{1,100}", warning_id)
        ):
            raise ControlError(400, "id must look like issfr_<letters, digits>")
        with self._store.transaction() as tx:
            return self._engine.early_fraud_warning(tx, args[0], fraud_type, actionable, warning_id)

    def _dispute(self, request: SandboxRequest, args: list[str]) -> Any:
        """The cardholder disputes the payment: a signed `charge.dispute.created` webhook."""
        reason = json_body(request).get("reason", "fraudulent")
        if not isinstance(reason, str) or not reason:
            raise ControlError(400, "reason must be a string such as fraudulent or product_not_received")
        with self._store.transaction() as tx:
            return self._engine.open_dispute(tx, args[0], reason)

    def _refunds(self, request: SandboxRequest, args: list[str]) -> Any:
        payment_intent = self._query(request, "payment_intent")
        charge = self._query(request, "charge")
        with self._store.transaction() as tx:
            if payment_intent is None and charge is not None:
                payment = tx.get_payment_by_charge(charge)
                payment_intent = payment.id if payment else None
            if payment_intent is None:
                raise ControlError(400, "payment_intent or charge is required")
            refunds = tx.refunds_for_payment(payment_intent)
            data = [
                {**self._engine.refund_json(tx, refund), "idempotency_key": refund.idempotency_key}
                for refund in refunds
            ]
        return {"object": "list", "data": data}

    def _settle(self, request: SandboxRequest, args: list[str]) -> Any:
        body = json_body(request)
        status = body.get("status", "succeeded")
        failure_reason = body.get("failure_reason")
        with self._store.transaction() as tx:
            refund = self._engine.settle_refund(tx, args[0], str(status), failure_reason)
            return self._engine.refund_json(tx, refund)

    def _fail_late(self, request: SandboxRequest, args: list[str]) -> Any:
        failure_reason = json_body(request).get("failure_reason")
        with self._store.transaction() as tx:
            refund = self._engine.fail_refund_late(tx, args[0], failure_reason)
            return self._engine.refund_json(tx, refund)

    def _events(self, request: SandboxRequest, args: list[str]) -> Any:
        with self._store.transaction() as tx:
            deliveries = [asdict(delivery) for delivery in tx.list_deliveries()]
            events = [{**asdict(event), "payload": json.loads(event.payload)} for event in tx.list_events()]
        return {"deliveries": deliveries, "events": events}

    def _config(self, request: SandboxRequest, args: list[str]) -> Any:
        return {"stripe_webhook_url": self._get_webhook_url()}

    def _set_config(self, request: SandboxRequest, args: list[str]) -> Any:
        body = json_body(request)
        if "stripe_webhook_url" in body:
            url = body["stripe_webhook_url"]
            if url is not None and not (isinstance(url, str) and re.match(r"https?://", url)):
                raise ControlError(400, "stripe_webhook_url must be an http(s) URL or null")
            self._set_webhook_url(url)
        return self._config(request, args)

    def _list_faults(self, request: SandboxRequest, args: list[str]) -> Any:
        return {"faults": self._faults.snapshot()}

    def _add_fault(self, request: SandboxRequest, args: list[str]) -> Any:
        try:
            fault = Fault.from_json(json_body(request))
        except ValueError as err:
            raise ControlError(400, str(err)) from err
        self._faults.add(fault)
        return {"faults": self._faults.snapshot()}

    def _clear_faults(self, request: SandboxRequest, args: list[str]) -> Any:
        self._faults.clear()
        return {"faults": []}

    def _stats_snapshot(self, request: SandboxRequest, args: list[str]) -> Any:
        with self._store.transaction() as tx:
            executing = tx.idempotency_executing()
        return {**self._stats.snapshot(), "executing": executing}

    def _reset(self, request: SandboxRequest, args: list[str]) -> Any:
        with self._store.transaction() as tx:
            tx.reset()
        self._faults.clear()
        self._stats.reset()
        return {"ok": True}


def _settlement(body: dict[str, Any], currency: str) -> Settlement | None:
    """`settlement_currency` with `exchange_rate` (and optionally `refund_exchange_rate`) as decimal
    strings of settlement major units per payment major unit."""
    into = body.get("settlement_currency")
    if into is None:
        return None
    if (
        not isinstance(into, str)
        or not re.fullmatch(r"[A-Za-z]{3}", into)
        or into.upper() == currency.upper()
    ):
        raise ControlError(400, "settlement_currency must be another three-letter code")
    rates = [body.get("exchange_rate"), body.get("refund_exchange_rate", body.get("exchange_rate"))]
    try:
        capture_rate, refund_rate = (Decimal(str(rate)) for rate in rates)
    except InvalidOperation as err:
        raise ControlError(400, 'exchange rates must be decimal strings such as "0.92"') from err
    if capture_rate <= 0 or refund_rate <= 0 or not all(isinstance(rate, str) for rate in rates):
        raise ControlError(400, "exchange rates must be positive decimal strings")
    return Settlement(str(into).upper(), capture_rate, refund_rate)
