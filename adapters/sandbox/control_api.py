"""The sandbox's own control API under `/_sandbox/`: seed payments, inject faults, settle, inspect.

JSON in and out, no authentication, loopback clients only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict
from decimal import Decimal, InvalidOperation
from typing import Any, cast
from urllib.parse import parse_qs

from adapters.sandbox.control_routes import ControlError, ControlRoute, dispatch, json_body, refuse_remote
from adapters.sandbox.faults import Fault, FaultRegistry
from adapters.sandbox.kinds import REFUND_BEHAVIORS, RefundBehavior
from adapters.sandbox.routing import SandboxRequest, SandboxResponse
from adapters.sandbox.stats import CallStats
from adapters.sandbox.store import SandboxStore, Settlement
from adapters.sandbox.stripe_engine import PaymentSeed, StripeEngine
from adapters.sandbox.stripe_objects import StripeApiError


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
