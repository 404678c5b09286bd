"""Stripe objects to our contracts and back: pure functions, no I/O. No Stripe field name leaves here
or `stripe.py` beside it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import stripe

from adapters.psp.base import PspEvent
from domain.contracts import PaymentRecord, PspRefundCall, PspRefundUpdate, RefundResult
from domain.fraud_warnings import FraudWarning
from domain.money import Money, currency_exponent
from domain.reconciliation import PspRefundRecord
from domain.status import ErrorCode, PaymentState, Provider, PspRefundStatus, RefundMethod

METADATA_REQUEST_ID = "refund_request_id"
METADATA_KEY_GENERATION = "key_generation"
METADATA_REASON_CODE = "reason_code"

# Stripe's documented deviations from ISO 4217 (docs.stripe.com/currencies): ISK is sent with two
# decimals that are always 00; MGA is zero-decimal. Three-decimal currencies need a final 0.
_STRIPE_EXPONENTS: dict[str, int] = {"ISK": 2, "MGA": 0}
_THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})
_STRIPE_REFUND_REASONS = frozenset({"duplicate", "fraudulent", "requested_by_customer"})


# amounts ----------------------------------------------------------------------------------------


def _exponent_shift(currency: str) -> int:
    currency = currency.upper()
    return _STRIPE_EXPONENTS.get(currency, currency_exponent(currency)) - currency_exponent(currency)


def _pow10(exponent: int) -> int:
    return int(10**exponent)


def to_stripe_amount(money: Money) -> int | None:
    """Our minor units as Stripe's `amount`, or None when Stripe cannot represent the value."""
    shift = _exponent_shift(money.currency)
    if shift >= 0:
        value = money.value * _pow10(shift)
    else:
        value, rest = divmod(money.value, _pow10(-shift))
        if rest:
            return None
    if money.currency in _THREE_DECIMAL and value % 10:
        return None
    return value


def from_stripe_amount(value: int, currency: str) -> int:
    """Stripe's `amount` in our (ISO 4217) minor units."""
    shift = _exponent_shift(currency)
    return value // _pow10(shift) if shift >= 0 else value * _pow10(-shift)


def money(value: int, currency: str) -> Money:
    return Money(value=from_stripe_amount(value, currency), currency=currency.upper())


# payments ---------------------------------------------------------------------------------------


def _expanded(value: Any) -> Mapping[str, Any] | None:
    return value if isinstance(value, Mapping) else None


def _fingerprint(charge: Mapping[str, Any] | None) -> str | None:
    card = ((charge or {}).get("payment_method_details") or {}).get("card") or {}
    value = card.get("fingerprint") if isinstance(card, Mapping) else None
    return str(value) if value else None


def _timestamp(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), UTC) if isinstance(value, int) and value > 0 else None


def settlement_of(balance_transaction: Any, currency: str) -> Money | None:
    """An expanded balance transaction in another currency than `currency`: what it settled at."""
    transaction = _expanded(balance_transaction)
    settled_in = str((transaction or {}).get("currency") or "").upper()
    if transaction is None or not settled_in or settled_in == currency.upper():
        return None
    return money(abs(int(transaction.get("amount") or 0)), settled_in)


def payment_from_intent(intent: Mapping[str, Any]) -> PaymentRecord:
    """A PaymentIntent (with `latest_charge` expanded when there is one) as our PaymentRecord."""
    reference = str(intent["id"])
    currency = str(intent.get("currency") or "").upper()
    charge = _expanded(intent.get("latest_charge"))
    match intent.get("status"):
        case "succeeded":
            captured = (
                int(charge.get("amount_captured") or 0)
                if charge is not None
                else int(intent.get("amount_received") or 0)
            )
            refunded = int(charge.get("amount_refunded") or 0) if charge is not None else 0
            return PaymentRecord(
                provider=Provider.STRIPE,
                reference=reference,
                state=PaymentState.CAPTURED,
                currency=currency,
                amount_captured=from_stripe_amount(captured, currency),
                amount_refunded=from_stripe_amount(refunded, currency),
                settlement=settlement_of((charge or {}).get("balance_transaction"), currency),
                created_at=_timestamp(intent.get("created")),
                card_fingerprint=_fingerprint(charge),
            )
        case "requires_capture":
            return PaymentRecord(
                provider=Provider.STRIPE,
                reference=reference,
                state=PaymentState.AUTHORIZED,
                currency=currency,
                amount_authorized=from_stripe_amount(int(intent.get("amount_capturable") or 0), currency),
            )
        case "canceled":
            return PaymentRecord(
                provider=Provider.STRIPE,
                reference=reference,
                state=PaymentState.CANCELED,
                currency=currency,
            )
        case "requires_payment_method" | "requires_confirmation" | "requires_action" | "processing":
            return PaymentRecord(
                provider=Provider.STRIPE,
                reference=reference,
                state=PaymentState.OTHER,
                currency=currency,
            )
        case _:
            return PaymentRecord(
                provider=Provider.STRIPE,
                reference=reference,
                state=PaymentState.OTHER,
                currency=currency,
            )


def payment_from_charge(charge: Mapping[str, Any]) -> PaymentRecord:
    record = _charge_record(charge)
    intent = charge.get("payment_intent")
    intent_id = intent if isinstance(intent, str) else (intent or {}).get("id")
    # a charge of a PaymentIntent is that intent's payment: refunds naming either share one guard
    return record.model_copy(update={"same_payment_as": str(intent_id)}) if intent_id else record


def _charge_record(charge: Mapping[str, Any]) -> PaymentRecord:
    reference = str(charge["id"])
    currency = str(charge.get("currency") or "").upper()
    amount = int(charge.get("amount") or 0)
    captured = bool(charge.get("captured"))
    match (charge.get("status"), captured, bool(charge.get("refunded"))):
        case ("succeeded", True, _):
            return PaymentRecord(
                provider=Provider.STRIPE,
                reference=reference,
                state=PaymentState.CAPTURED,
                currency=currency,
                amount_captured=from_stripe_amount(int(charge.get("amount_captured") or 0), currency),
                amount_refunded=from_stripe_amount(int(charge.get("amount_refunded") or 0), currency),
            )
        case ("succeeded", False, True):
            # An authorisation released before capture.
            return PaymentRecord(
                provider=Provider.STRIPE,
                reference=reference,
                state=PaymentState.CANCELED,
                currency=currency,
            )
        case ("succeeded", False, False):
            return PaymentRecord(
                provider=Provider.STRIPE,
                reference=reference,
                state=PaymentState.AUTHORIZED,
                currency=currency,
                amount_authorized=from_stripe_amount(amount, currency),
            )
        case _:
            return PaymentRecord(
                provider=Provider.STRIPE,
                reference=reference,
                state=PaymentState.OTHER,
                currency=currency,
            )


def not_found(reference: str) -> PaymentRecord:
    return PaymentRecord(provider=Provider.STRIPE, reference=reference, state=PaymentState.NOT_FOUND)


# refunds ----------------------------------------------------------------------------------------


def payment_param(reference: str) -> dict[str, str]:
    """Which Stripe parameter names the payment: a PaymentIntent or a (legacy) charge."""
    return {"charge": reference} if reference.startswith("ch_") else {"payment_intent": reference}


def refund_create_params(call: PspRefundCall, amount: int) -> dict[str, Any]:
    params: dict[str, Any] = {
        **payment_param(call.payment.reference),
        "amount": amount,
        "metadata": {
            METADATA_REQUEST_ID: call.request_id,
            METADATA_KEY_GENERATION: str(call.key_generation),
            METADATA_REASON_CODE: call.reason_code,
        },
        # what the refund cost in the merchant's settlement currency, for the FX difference
        "expand": ["balance_transaction"],
    }
    if call.reason_code in _STRIPE_REFUND_REASONS:
        params["reason"] = call.reason_code
    return params


def refund_status(status: str | None) -> PspRefundStatus:
    match status:
        case "pending" | "requires_action":
            return PspRefundStatus.PENDING
        case "succeeded":
            return PspRefundStatus.SUCCEEDED
        case "failed" | "canceled":
            return PspRefundStatus.FAILED
        case _:
            # Unknown to us: keep waiting for a status we understand rather than decide.
            return PspRefundStatus.PENDING


def refund_failure(refund: Mapping[str, Any]) -> tuple[ErrorCode | None, str]:
    status = refund_status(refund.get("status"))
    if status is not PspRefundStatus.FAILED:
        return None, ""
    reason = str(refund.get("failure_reason") or refund.get("status") or "failed")
    return ErrorCode.PSP_DECLINED, reason


def refund_request_id(refund: Mapping[str, Any]) -> str | None:
    metadata = refund.get("metadata") or {}
    value = metadata.get(METADATA_REQUEST_ID) if isinstance(metadata, Mapping) else None
    return str(value) if value else None


def refund_result(
    refund: Mapping[str, Any],
    *,
    psp_request_id: str | None,
    psp_response_ms: int | None,
    adopted: bool = False,
) -> RefundResult:
    failure_code, failure_message = refund_failure(refund)
    currency = str(refund.get("currency") or "")
    payment = refund.get("payment_intent") or refund.get("charge")
    return RefundResult(
        psp_refund_id=str(refund["id"]),
        status=refund_status(refund.get("status")),
        amount=money(int(refund.get("amount") or 0), currency),
        method=RefundMethod.REFUND,
        failure_code=failure_code,
        failure_message=failure_message,
        psp_request_id=psp_request_id,
        psp_response_ms=psp_response_ms,
        adopted=adopted,
        settlement=settlement_of(refund.get("balance_transaction"), currency),
        payment_reference=payment if isinstance(payment, str) and payment else None,
    )


def void_result(
    intent: Mapping[str, Any],
    *,
    psp_request_id: str | None,
    psp_response_ms: int | None,
    adopted: bool = False,
) -> RefundResult:
    """A canceled PaymentIntent is a successful void; any other state means it is not voided."""
    currency = str(intent.get("currency") or "")
    canceled = intent.get("status") == "canceled"
    return RefundResult(
        psp_refund_id=str(intent["id"]),
        status=PspRefundStatus.SUCCEEDED if canceled else PspRefundStatus.PENDING,
        amount=money(int(intent.get("amount") or 0), currency),
        method=RefundMethod.VOID,
        psp_request_id=psp_request_id,
        psp_response_ms=psp_response_ms,
        adopted=adopted,
    )


def refund_record(refund: Mapping[str, Any]) -> PspRefundRecord:
    return PspRefundRecord(
        psp_refund_id=str(refund["id"]),
        payment_reference=str(refund.get("payment_intent") or refund.get("charge") or ""),
        amount=money(int(refund.get("amount") or 0), str(refund.get("currency") or "")),
        status=refund_status(refund.get("status")),
    )


def pick_refund(refunds: Sequence[Mapping[str, Any]], request_id: str) -> Mapping[str, Any] | None:
    """The refund made for our request: a live one before a failed one (there should be one)."""
    ours = [refund for refund in refunds if refund_request_id(refund) == request_id]
    live = [r for r in ours if refund_status(r.get("status")) is not PspRefundStatus.FAILED]
    candidates = live or ours
    return candidates[0] if candidates else None


# declines ---------------------------------------------------------------------------------------

# Invalid-request codes that mean our request was malformed: a bug, not the PSP's refusal.
BUG_CODES = frozenset(
    {
        "parameter_missing",
        "parameter_unknown",
        "parameter_invalid_integer",
        "parameter_invalid_string",
        "parameter_invalid_boolean",
        "parameter_invalid_empty",
        "parameters_exclusive",
        "url_invalid",
    }
)


def decline_code(code: str | None) -> ErrorCode:
    """What a Stripe refusal of a refund (a 4xx with a code) means to us."""
    match code:
        case "amount_too_large":
            return ErrorCode.REFUND_EXCEEDS_CAPTURE
        case "charge_already_refunded":
            return ErrorCode.ALREADY_REFUNDED
        case "resource_missing":
            return ErrorCode.PAYMENT_NOT_FOUND
        case _:
            return ErrorCode.PSP_DECLINED


# webhooks ---------------------------------------------------------------------------------------


def event_object(event: Mapping[str, Any], kind: type[stripe.StripeObject]) -> Mapping[str, Any] | None:
    """The event's `data.object` when the SDK reads it as `kind` (by its `object`, against the SDK's own
    OBJECT_NAME: Radar's warning is a `radar.early_fraud_warning`), else None."""
    data = event.get("data")
    obj = data.get("object") if isinstance(data, Mapping) else None
    if not isinstance(obj, Mapping):
        return None
    typed = stripe.Event.construct_from({"data": {"object": dict(obj)}}, "").data.object
    return obj if isinstance(typed, kind) else None


def classify_event(event: Mapping[str, Any]) -> PspEvent:
    """A verified Stripe event as ours: a refund update for one of our requests, or ignored."""
    event_id = str(event.get("id") or "")
    event_type = str(event.get("type") or "")
    match event_type:
        case "refund.created" | "refund.updated" | "refund.failed" | "charge.refund.updated":
            obj = event_object(event, stripe.Refund)
            if obj is None or "id" not in obj:
                return PspEvent(event_id, "ignored", raw_type=event_type, detail={"why": "no refund"})
            request_id = refund_request_id(obj)
            if request_id is None:
                return _external_refund(event_id, event_type, obj)
            if event_type == "refund.created":
                # Our own create call already answered with this state; signalling it again is noise.
                return PspEvent(event_id, "ignored", raw_type=event_type, detail={"why": "known from create"})
            failure_code, failure_message = refund_failure(obj)
            return PspEvent(
                event_id=event_id,
                kind="refund_update",
                request_id=request_id,
                update=PspRefundUpdate(
                    psp_refund_id=str(obj["id"]),
                    status=refund_status(obj.get("status")),
                    failure_code=failure_code,
                    failure_message=failure_message,
                    psp_event_id=event_id,
                ),
                raw_type=event_type,
                detail={"psp_status": str(obj.get("status"))},
            )
        case "radar.early_fraud_warning.created" | "radar.early_fraud_warning.updated":
            return _fraud_warning(event_id, event_type, event_object(event, stripe.radar.EarlyFraudWarning))
        case _:
            return PspEvent(event_id, "ignored", raw_type=event_type, detail={"why": "event type"})


def _fraud_warning(event_id: str, event_type: str, obj: Mapping[str, Any] | None) -> PspEvent:
    """Radar's early fraud warning on a charge: the refund names its PaymentIntent (else the charge,
    as Stripe's own example has no PaymentIntent)."""
    if obj is None or not obj.get("id"):
        return PspEvent(event_id, "ignored", raw_type=event_type, detail={"why": "no early fraud warning"})
    intent, charge = obj.get("payment_intent"), obj.get("charge")
    reference = intent if isinstance(intent, str) and intent else charge
    if not isinstance(reference, str) or not reference:
        return PspEvent(event_id, "ignored", raw_type=event_type, detail={"why": "no charge"})
    warning = FraudWarning(
        provider="stripe",
        warning_id=str(obj["id"]),
        payment_reference=reference,
        actionable=obj.get("actionable") is True,
        fraud_type=str(obj.get("fraud_type") or ""),
    )
    return PspEvent(
        event_id=event_id,
        kind="fraud_warning",
        payment_reference=reference,
        raw_type=event_type,
        warning=warning,
        detail={"fraud_type": warning.fraud_type, "actionable": str(warning.actionable).lower()},
    )


def _external_refund(event_id: str, event_type: str, refund: Mapping[str, Any]) -> PspEvent:
    """A refund made in Stripe's dashboard: no request id of ours, adopted so finance sees it."""
    failure_code, failure_message = refund_failure(refund)
    reference = refund.get("payment_intent") or refund.get("charge")
    return PspEvent(
        event_id=event_id,
        kind="refund_update",
        payment_reference=str(reference) if reference else None,
        update=PspRefundUpdate(
            psp_refund_id=str(refund["id"]),
            status=refund_status(refund.get("status")),
            failure_code=failure_code,
            failure_message=failure_message,
            psp_event_id=event_id,
            amount=money(int(refund.get("amount") or 0), str(refund.get("currency") or "")),
        ),
        raw_type=event_type,
        detail={"psp_status": str(refund.get("status")), "why": "refund not made by us"},
    )


def dispute_events(event: Mapping[str, Any]) -> list[PspEvent] | None:
    """`charge.dispute.created`: a hold on the charge and on its PaymentIntent, whichever a refund
    request names. None for any other event."""
    if event.get("type") != "charge.dispute.created":
        return None
    dispute = event_object(event, stripe.Dispute)
    if dispute is None:
        return []
    references = [str(dispute[k]) for k in ("payment_intent", "charge") if isinstance(dispute.get(k), str)]
    reason = str(dispute.get("reason") or "dispute")
    return [
        PspEvent(
            event_id=str(event.get("id") or ""),
            kind="dispute_opened",
            payment_reference=reference,
            raw_type="charge.dispute.created",
            detail={"reason": reason, "dispute": str(dispute.get("id") or "")},
        )
        for reference in references
    ]
