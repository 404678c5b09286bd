"""Stripe's wire shapes: object JSON, list envelopes, error bodies, ids, webhook signatures, and balance
transactions (an amount converted into the merchant's settlement currency)."""

from __future__ import annotations

import secrets
import string
import time
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import stripe

from domain.money import currency_exponent
from sandbox.store import PaymentRow, RefundRow, Settlement

API_VERSION = "2025-01-27.acacia"
_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))


def new_request_id() -> str:
    return new_id("req_", 14)


def now_s() -> int:
    return int(time.time())


class StripeApiError(Exception):
    """An error Stripe would answer with; rendered as `{"error": {...}}` with its HTTP status."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code is not None:
            error["code"] = self.code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param is not None:
            error["param"] = self.param
        return {"error": error}


def resource_missing(kind: str, object_id: str, param: str = "id") -> StripeApiError:
    return StripeApiError(404, f"No such {kind}: '{object_id}'", code="resource_missing", param=param)


def charge_json(
    p: PaymentRow, amount_refunded: int, balance_transaction: dict[str, Any] | None = None
) -> dict[str, Any]:
    captured = p.amount_captured > 0
    released = not captured and p.status == "canceled"
    refunded_total = p.amount if released else amount_refunded
    return {
        "id": p.charge_id,
        "object": "charge",
        "amount": p.amount,
        "amount_captured": p.amount_captured,
        "amount_refunded": refunded_total,
        "balance_transaction": balance_transaction,
        "captured": captured,
        "created": p.created,
        "currency": p.currency,
        "description": None,
        "disputed": False,
        "failure_code": None,
        "failure_message": None,
        "livemode": False,
        "metadata": p.metadata,
        "paid": True,
        "payment_intent": p.id,
        "payment_method_details": {
            "type": "card",
            # the demo card of a payment is its metadata's `card`, else one of its own
            "card": {
                "brand": "visa",
                "last4": "4242",
                "fingerprint": p.metadata.get("card") or f"fp_{p.id[-12:]}",
            },
        },
        "refunded": released or (captured and refunded_total >= p.amount_captured),
        "status": "succeeded",
    }


def payment_intent_json(p: PaymentRow, latest_charge: str | dict[str, Any] | None) -> dict[str, Any]:
    return {
        "id": p.id,
        "object": "payment_intent",
        "amount": p.amount,
        "amount_capturable": p.amount if p.status == "requires_capture" else 0,
        "amount_received": p.amount_captured if p.status == "succeeded" else 0,
        "canceled_at": p.canceled_at,
        "cancellation_reason": p.cancellation_reason,
        "capture_method": p.capture_method,
        "confirmation_method": "automatic",
        "created": p.created,
        "currency": p.currency,
        "description": None,
        "latest_charge": latest_charge,
        "livemode": False,
        "metadata": p.metadata,
        "payment_method_types": ["card"],
        "status": p.status,
    }


def refund_json(
    r: RefundRow,
    *,
    charge: str | dict[str, Any] | None = None,
    payment_intent: str | dict[str, Any] | None = None,
    balance_transaction: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": r.id,
        "object": "refund",
        "amount": r.amount,
        "balance_transaction": balance_transaction,
        "charge": charge if charge is not None else r.charge_id,
        "created": r.created,
        "currency": r.currency,
        "metadata": r.metadata,
        "payment_intent": payment_intent if payment_intent is not None else r.payment_id,
        "reason": r.reason,
        "receipt_number": None,
        "status": r.status,
    }
    if r.failure_reason is not None:
        body["failure_reason"] = r.failure_reason
    return body


def list_json(url: str, data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


def event_json(event_id: str, event_type: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": event_id,
        "object": "event",
        "api_version": API_VERSION,
        "created": now_s(),
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }


def webhook_headers(secret: str, payload: str) -> dict[str, str]:
    """The headers Stripe sends with a webhook: a fresh `Stripe-Signature` per attempt."""
    return {
        "Stripe-Signature": stripe.WebhookSignature.generate_signature_header(payload, secret),
        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
    }


# settlement currency ------------------------------------------------------------------------------


def convert(amount: int, currency: str, into: str, rate: Decimal) -> int:
    """Minor units of `currency` at `rate` (major units of `into` per major unit) in minor units of
    `into`, rounded half to even."""
    shift = currency_exponent(into) - currency_exponent(currency)
    return int((Decimal(amount) * rate).scaleb(shift).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def balance_transaction(
    source_id: str, amount: int, currency: str, settlement: Settlement | None, *, refund: bool
) -> dict[str, Any]:
    """Stripe's balance transaction for a charge (positive) or a refund (negative)."""
    rate = (
        settlement.refund_rate if refund and settlement else settlement.capture_rate if settlement else None
    )
    into = settlement.currency.lower() if settlement else currency.lower()
    settled = convert(amount, currency, into, rate) if rate is not None else amount
    signed = -settled if refund else settled
    return {
        "id": f"txn_{source_id.split('_', 1)[-1]}",
        "object": "balance_transaction",
        "amount": signed,
        "currency": into,
        "fee": 0,
        "net": signed,
        "source": source_id,
        "type": "refund" if refund else "charge",
    }
