"""Stripe's wire shapes: object JSON, list envelopes, error bodies, ids, webhook signatures, and balance
transactions (an amount converted into the merchant's settlement currency)."""

from __future__ import annotations

import hashlib
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


# Fields Stripe sends on every object of a kind (its examples in tests/contracts/examples/stripe have
# them all) that the sandbox has nothing for: Connect, customers, invoices, shipping, Radar reviews.
# Null, as Stripe sends them for a plain card payment.
_CHARGE_NULLS = dict.fromkeys(
    (
        "application", "application_fee", "application_fee_amount", "customer", "description",
        "failure_balance_transaction", "failure_code", "failure_message", "on_behalf_of",
        "receipt_email", "receipt_number", "review", "shipping", "source", "source_transfer",
        "statement_descriptor", "statement_descriptor_suffix", "transfer_data", "transfer_group",
    )
)  # fmt: skip
_INTENT_NULLS = dict.fromkeys(
    (
        "application", "application_fee_amount", "automatic_payment_methods", "customer",
        "customer_account", "description", "excluded_payment_method_types", "last_payment_error",
        "next_action", "on_behalf_of", "payment_method_configuration_details", "processing",
        "receipt_email", "review", "setup_future_usage", "shipping", "source", "statement_descriptor",
        "statement_descriptor_suffix", "transfer_data", "transfer_group",
    )
)  # fmt: skip
_REFUND_NULLS = dict.fromkeys(
    ("customer", "customer_account", "receipt_number", "source_transfer_reversal", "transfer_reversal")
)
_NO_ADDRESS = dict.fromkeys(("city", "country", "line1", "line2", "postal_code", "state"))
STATEMENT_DESCRIPTOR = "REFUNDS SANDBOX"


def payment_method_id(payment_id: str) -> str:
    """The card PaymentMethod a sandbox payment was made with (one per payment)."""
    return "pm_" + payment_id.removeprefix("pi_")


def _card(p: PaymentRow) -> dict[str, Any]:
    return {
        "amount_authorized": p.amount,
        "brand": "visa",
        "checks": {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": "pass"},
        "country": "US",
        "exp_month": 12,
        "exp_year": 2034,
        # the demo card of a payment is its metadata's `card`, else one of its own
        "fingerprint": p.metadata.get("card") or f"fp_{p.id[-12:]}",
        "funding": "credit",
        "installments": None,
        "last4": "4242",
        "mandate": None,
        "network": "visa",
        "network_token": {"used": False},
        "three_d_secure": None,
        "wallet": None,
    }


def charge_json(
    p: PaymentRow, amount_refunded: int, balance_transaction: dict[str, Any] | None = None
) -> dict[str, Any]:
    captured = p.amount_captured > 0
    released = not captured and p.status == "canceled"
    refunded_total = p.amount if released else amount_refunded
    return {
        **_CHARGE_NULLS,
        "id": p.charge_id,
        "object": "charge",
        "amount": p.amount,
        "amount_captured": p.amount_captured,
        "amount_refunded": refunded_total,
        "balance_transaction": balance_transaction,
        "billing_details": {
            "address": _NO_ADDRESS,
            "email": None,
            "name": None,
            "phone": None,
            "tax_id": None,
        },
        "calculated_statement_descriptor": STATEMENT_DESCRIPTOR,
        "captured": captured,
        "created": p.created,
        "currency": p.currency,
        "disputed": False,
        "fraud_details": {},
        "livemode": False,
        "metadata": p.metadata,
        "outcome": {
            "advice_code": None,
            "network_advice_code": None,
            "network_decline_code": None,
            "network_status": "approved_by_network",
            "reason": None,
            "risk_level": "normal",
            "risk_score": 20,
            "seller_message": "Payment complete.",
            "type": "authorized",
        },
        "paid": True,
        "payment_intent": p.id,
        "payment_method": payment_method_id(p.id),
        "payment_method_details": {"type": "card", "card": _card(p)},
        "receipt_url": f"https://pay.stripe.com/receipts/payment/{p.charge_id}",
        "refunded": released or (captured and refunded_total >= p.amount_captured),
        # `refunds` is not sent unless expanded (API version 2022-11-15 on)
        "status": "succeeded",
    }


def payment_intent_json(p: PaymentRow, latest_charge: str | dict[str, Any] | None) -> dict[str, Any]:
    confirmed = p.charge_id is not None
    return {
        **_INTENT_NULLS,
        "id": p.id,
        "object": "payment_intent",
        "amount": p.amount,
        "amount_capturable": p.amount if p.status == "requires_capture" else 0,
        "amount_details": {"tip": {}},
        "amount_received": p.amount_captured if p.status == "succeeded" else 0,
        "canceled_at": p.canceled_at,
        "cancellation_reason": p.cancellation_reason,
        "capture_method": p.capture_method,
        "client_secret": f"{p.id}_secret_{hashlib.sha256(p.id.encode()).hexdigest()[:24]}",
        "confirmation_method": "automatic",
        "created": p.created,
        "currency": p.currency,
        "latest_charge": latest_charge,
        "livemode": False,
        "managed_payments": {"enabled": False},
        "metadata": p.metadata,
        "payment_method": payment_method_id(p.id) if confirmed else None,
        "payment_method_options": {
            "card": {
                "installments": None,
                "mandate_options": None,
                "network": None,
                "request_three_d_secure": "automatic",
            }
        },
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
        **_REFUND_NULLS,
        "id": r.id,
        "object": "refund",
        "amount": r.amount,
        "balance_transaction": balance_transaction,
        "charge": charge if charge is not None else r.charge_id,
        "created": r.created,
        "currency": r.currency,
        # a refund of a captured card payment goes back to the card as a refund, not a reversal
        "destination_details": {"card": {"type": "refund"}, "type": "card"},
        "metadata": r.metadata,
        "payment_intent": payment_intent if payment_intent is not None else r.payment_id,
        "payment_method": payment_method_id(r.payment_id),
        "reason": r.reason,
        "status": r.status,
    }
    if r.failure_reason is not None:
        body["failure_reason"] = r.failure_reason
    return body


_EVIDENCE_FIELDS = (
    "access_activity_log", "billing_address", "cancellation_policy", "cancellation_policy_disclosure",
    "cancellation_rebuttal", "customer_communication", "customer_email_address", "customer_name",
    "customer_purchase_ip", "customer_signature", "duplicate_charge_documentation",
    "duplicate_charge_explanation", "duplicate_charge_id", "product_description", "receipt",
    "refund_policy", "refund_policy_disclosure", "refund_refusal_explanation", "service_date",
    "service_documentation", "shipping_address", "shipping_carrier", "shipping_date",
    "shipping_documentation", "shipping_tracking_number", "uncategorized_file", "uncategorized_text",
)  # fmt: skip
_RESPONSE_DAYS = 21  # a card network's usual time to answer a chargeback


def dispute_json(
    p: PaymentRow, dispute_id: str, reason: str, amount_refunded: int, created: int
) -> dict[str, Any]:
    """A chargeback on the payment's charge, waiting for the merchant's evidence."""
    return {
        "id": dispute_id,
        "object": "dispute",
        "amount": p.amount_captured - amount_refunded,
        "balance_transactions": [],
        "charge": p.charge_id,
        "created": created,
        "currency": p.currency,
        "enhanced_eligibility_types": [],
        "evidence": {**dict.fromkeys(_EVIDENCE_FIELDS), "enhanced_evidence": {}},
        "evidence_details": {
            "due_by": created + _RESPONSE_DAYS * 86_400,
            "enhanced_eligibility": {},
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
        },
        "is_charge_refundable": amount_refunded < p.amount_captured,
        "livemode": False,
        "metadata": {},
        "payment_intent": p.id,
        "payment_method_details": {
            "card": {
                "brand": "visa",
                "case_type": "chargeback",
                "network": "visa",
                "network_reason_code": "10.4",
            },
            "type": "card",
        },
        "reason": reason,
        "status": "needs_response",
    }


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


_AVAILABLE_AFTER_S = 2 * 86_400  # a charge's funds become available two days later


def balance_transaction(
    source_id: str, amount: int, currency: str, settlement: Settlement | None, *, refund: bool, created: int
) -> dict[str, Any]:
    """Stripe's balance transaction for a charge (positive) or a refund (negative)."""
    rate = (
        settlement.refund_rate if refund and settlement else settlement.capture_rate if settlement else None
    )
    into = settlement.currency.lower() if settlement else currency.lower()
    settled = convert(amount, currency, into, rate) if rate is not None else amount
    signed = -settled if refund else settled
    kind = "refund" if refund else "charge"
    return {
        "id": f"txn_{source_id.split('_', 1)[-1]}",
        "object": "balance_transaction",
        "amount": signed,
        "available_on": created if refund else created + _AVAILABLE_AFTER_S,
        "balance_type": "payments",
        "created": created,
        "currency": into,
        "description": None,
        # Stripe's JSON number: what one unit of the payment's currency settled at (display only)
        "exchange_rate": float(rate) if rate is not None else None,
        "fee": 0,
        "fee_details": [],
        "net": signed,
        "reporting_category": kind,
        "source": source_id,
        "status": "available" if refund else "pending",
        "type": kind,
    }
