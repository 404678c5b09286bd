"""Adyen objects to our contracts and back: pure functions, no I/O. No Adyen field name leaves here or
`adyen.py` beside it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from adapters.psp.base import PspEvent
from domain.contracts import PaymentRecord, PspRefundCall, PspRefundUpdate, RefundResult
from domain.fraud_warnings import FraudWarning
from domain.money import Money, currency_exponent
from domain.status import ErrorCode, PaymentState, Provider, PspRefundStatus

# Adyen's deviations from ISO 4217 (docs.adyen.com/development-resources/currency-codes: "For CLP, CVE,
# IDR, and ISK the standard has a different number of decimals than shown in our table"). Everything
# else follows domain.money's ISO table.
ADYEN_EXPONENTS: dict[str, int] = {"CLP": 2, "CVE": 0, "IDR": 0, "ISK": 2}

# The fields of a NotificationRequestItem that its HMAC signs, in order.
HMAC_FIELDS = (
    "pspReference",
    "originalReference",
    "merchantAccountCode",
    "merchantReference",
    "value",
    "currency",
    "eventCode",
    "success",
)

# Adyen's "request already processed or in progress" (same key while the first runs, or reused).
IDEMPOTENCY_ERROR_CODE = "704"
# 422 "Original pspReference required for this operation": the payment is unknown to Adyen.
UNKNOWN_PAYMENT_ERROR_CODE = "167"


# amounts ----------------------------------------------------------------------------------------


def adyen_exponent(currency: str) -> int:
    currency = currency.upper()
    return ADYEN_EXPONENTS.get(currency, currency_exponent(currency))


def _shift(currency: str) -> int:
    return adyen_exponent(currency) - currency_exponent(currency)


def to_adyen_amount(money: Money) -> dict[str, Any] | None:
    """Our (ISO) minor units as Adyen's `amount`, or None when Adyen cannot represent the value
    (e.g. IDR 12.34: Adyen takes IDR without decimals)."""
    shift = _shift(money.currency)
    if shift >= 0:
        value = money.value * int(10**shift)
    else:
        value, rest = divmod(money.value, int(10**-shift))
        if rest:
            return None
    return {"value": value, "currency": money.currency}


def from_adyen_amount(value: int, currency: str) -> int:
    """Adyen's minor units in ours; Adyen's extra CLP/ISK decimals are always 00 and drop."""
    shift = _shift(currency)
    return value // int(10**shift) if shift >= 0 else value * int(10**-shift)


def money_from(amount: Any) -> Money | None:
    if not isinstance(amount, Mapping):
        return None
    currency, value = amount.get("currency"), amount.get("value")
    if not isinstance(currency, str) or len(currency) != 3 or not isinstance(value, int) or value < 0:
        return None
    return Money(value=from_adyen_amount(value, currency), currency=currency.upper())


# requests and answers ---------------------------------------------------------------------------


def refund_request(amount: Mapping[str, Any], merchant_account: str, reference: str) -> dict[str, Any]:
    """`reference` carries our request id (or its alias): Adyen echoes it as the notification's
    merchantReference."""
    return {"merchantAccount": merchant_account, "amount": dict(amount), "reference": reference}


def cancel_request(merchant_account: str, reference: str) -> dict[str, Any]:
    return {"merchantAccount": merchant_account, "reference": reference}


def modification_result(
    answer: Mapping[str, Any],
    call: PspRefundCall,
    *,
    psp_request_id: str | None,
    psp_response_ms: int | None,
) -> RefundResult:
    """Adyen's 201 answer to a refund or cancel: `received` only; the outcome comes by notification."""
    psp_reference = answer.get("pspReference")
    status = answer.get("status")
    match status:
        case "received":
            result_status = PspRefundStatus.PENDING
        case _:
            # Checkout modifications only ever answer "received"; anything else we do not decide on.
            result_status = PspRefundStatus.PENDING
    return RefundResult(
        psp_refund_id=str(psp_reference) if psp_reference else None,
        status=result_status,
        amount=money_from(answer.get("amount")) or call.amount,
        method=call.method,
        psp_request_id=psp_request_id,
        psp_response_ms=psp_response_ms,
    )


def validation_decline_code(error_code: str | None) -> ErrorCode:
    """What a 422 refusal of a modification means to us."""
    match error_code:
        case "167":
            return ErrorCode.PAYMENT_NOT_FOUND
        case "137" | "100":
            return ErrorCode.INVALID_AMOUNT
        case _:
            return ErrorCode.PSP_DECLINED


def not_found(reference: str) -> PaymentRecord:
    return PaymentRecord(provider=Provider.ADYEN, reference=reference, state=PaymentState.NOT_FOUND)


# notifications: HMAC ----------------------------------------------------------------------------


def _field(item: Mapping[str, Any], name: str) -> str:
    if name in ("value", "currency"):
        amount = item.get("amount")
        value = amount.get(name) if isinstance(amount, Mapping) else None
    else:
        value = item.get(name)
    # Absent and null both sign as the empty string; Adyen keeps the colons.
    return "" if value is None else str(value)


def hmac_signing_string(item: Mapping[str, Any]) -> str:
    return ":".join(_field(item, name) for name in HMAC_FIELDS)


def hmac_signature(item: Mapping[str, Any], hmac_key_hex: str) -> str:
    """Base64(HMAC-SHA256(hex-decoded key, signing string)) of one NotificationRequestItem."""
    key = binascii.a2b_hex(hmac_key_hex)
    signed = hmac_signing_string(item).encode("utf-8", "surrogatepass")  # a forged lone surrogate too
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def item_signature(item: Mapping[str, Any]) -> str | None:
    additional = item.get("additionalData")
    signature = additional.get("hmacSignature") if isinstance(additional, Mapping) else None
    return signature if isinstance(signature, str) and signature else None


def signature_valid(item: Mapping[str, Any], hmac_key_hex: str) -> bool:
    signature = item_signature(item)
    expected = hmac_signature(item, hmac_key_hex)
    # as bytes: `compare_digest` refuses non-ASCII text with a TypeError, and a lone surrogate (JSON's
    # `\ud800`) does not even encode as UTF-8 strictly: either would be a 500
    given = signature.encode("utf-8", "surrogatepass") if signature is not None else None
    return given is not None and hmac.compare_digest(given, expected.encode())


# notifications: classification ------------------------------------------------------------------


def event_id(item: Mapping[str, Any]) -> str:
    """Stable across Adyen's redeliveries of the same item: its pspReference, eventCode and success."""
    return f"adyen:{_field(item, 'pspReference')}:{_field(item, 'eventCode')}:{_field(item, 'success')}"


def _success(item: Mapping[str, Any]) -> bool:
    return _field(item, "success").lower() == "true"


def refund_failure_code(reason: str) -> ErrorCode:
    """Adyen's `reason` for a refused refund, as our code (its texts are not a stable enum)."""
    lowered = reason.lower()
    if "insufficient balance" in lowered or "exceed" in lowered:
        return ErrorCode.REFUND_EXCEEDS_CAPTURE
    if "already" in lowered and "refund" in lowered:
        return ErrorCode.ALREADY_REFUNDED
    return ErrorCode.PSP_DECLINED


# A refund's money, moved (REFUND) or moved back (the two after a successful REFUND): the amount rides
# along so that a refund we never asked for can be booked, and reversed when it is undone.
_AMOUNT_CODES = frozenset({"REFUND", "REFUND_FAILED", "REFUNDED_REVERSED"})


def _refund_update(item: Mapping[str, Any], code: str, identifier: str) -> PspEvent:
    """Our refund's outcome, or (no merchantReference: made in the Customer Area) one to adopt.

    Adyen's published examples (tests/contracts/examples/adyen) give every refund notification the
    refund's own pspReference and the payment's as originalReference.
    """
    reason = _field(item, "reason")
    payment_reference = _field(item, "originalReference")
    failure: ErrorCode | None
    match (code, _success(item)):
        case ("REFUND_FAILED" | "REFUNDED_REVERSED", _):
            # Reported after a successful REFUND, which they undo: REFUND_FAILED, the scheme or bank
            # rejected it; REFUNDED_REVERSED, the money came back to the merchant's bank account. Either
            # way the customer was not paid.
            status, failure = PspRefundStatus.FAILED, ErrorCode.PSP_DECLINED
        case (_, True):
            status, failure = PspRefundStatus.SUCCEEDED, None
        case ("REFUND" | "CANCEL_OR_REFUND", False):
            status, failure = PspRefundStatus.FAILED, refund_failure_code(reason)
        case (_, False):
            status, failure = PspRefundStatus.FAILED, ErrorCode.PSP_DECLINED
    return PspEvent(
        event_id=identifier,
        kind="refund_update",
        request_id=_field(item, "merchantReference") or None,
        update=PspRefundUpdate(
            psp_refund_id=_field(item, "pspReference"),
            status=status,
            failure_code=failure,
            failure_message=reason if status is PspRefundStatus.FAILED else "",
            psp_event_id=identifier,
            amount=money_from(item.get("amount")) if code in _AMOUNT_CODES else None,
        ),
        payment_reference=payment_reference or None,
        raw_type=code,
        detail={"success": _field(item, "success"), "payment_reference": payment_reference},
    )


def _payment_update(item: Mapping[str, Any], code: str, identifier: str, reference: str) -> PspEvent:
    money = money_from(item.get("amount"))
    if not _success(item) or money is None or not reference:
        return PspEvent(identifier, "ignored", raw_type=code, detail={"why": "unsuccessful or incomplete"})
    captured = code == "CAPTURE"
    payment = PaymentRecord(
        provider=Provider.ADYEN,
        reference=reference,
        state=PaymentState.CAPTURED if captured else PaymentState.AUTHORIZED,
        currency=money.currency,
        amount_authorized=money.value,
        amount_captured=money.value if captured else 0,
    )
    return PspEvent(identifier, "payment_update", payment=payment, payment_reference=reference, raw_type=code)


def classify_item(item: Mapping[str, Any]) -> PspEvent:
    """A verified NotificationRequestItem as ours; unknown event codes are ignored explicitly."""
    code = _field(item, "eventCode")
    identifier = event_id(item)
    match code:
        case "REFUND" | "CANCELLATION" | "REFUND_FAILED" | "REFUNDED_REVERSED" | "CANCEL_OR_REFUND":
            return _refund_update(item, code, identifier)
        case "AUTHORISATION":
            return _payment_update(item, code, identifier, _field(item, "pspReference"))
        case "CAPTURE":
            # A capture's pspReference is its own; the payment's is the originalReference.
            return _payment_update(item, code, identifier, _field(item, "originalReference"))
        case "NOTIFICATION_OF_CHARGEBACK" | "CHARGEBACK":
            reference = _field(item, "originalReference") or _field(item, "pspReference")
            return PspEvent(identifier, "dispute_opened", payment_reference=reference, raw_type=code)
        case "NOTIFICATION_OF_FRAUD":
            return _fraud_warning(item, code, identifier)
        case _:
            return PspEvent(identifier, "ignored", raw_type=code, detail={"why": "event code"})


# NOTIFICATION_OF_FRAUD's `additionalData`: the scheme's fraud reason code and the scheme
# (webhooks.DisputesNotificationAdditionalData in tests/contracts/specs/adyen.json); kept for ops
# beside the `reason` text.
_FRAUD_CODES = {"nofReasonCode": "scheme_reason_code", "nofSchemeCode": "scheme"}


def _fraud_warning(item: Mapping[str, Any], code: str, identifier: str) -> PspEvent:
    """NOTIFICATION_OF_FRAUD: the issuer reported the payment (its originalReference; the item's own
    pspReference names the notification) as fraud, of the type its `reason` says. Neither the reason
    nor `additionalData` is covered by the HMAC, which signs references, amount, event code and success."""
    reference = _field(item, "originalReference") or _field(item, "pspReference")
    if not reference:
        return PspEvent(identifier, "ignored", raw_type=code, detail={"why": "no payment"})
    warning = FraudWarning(
        provider="adyen",
        warning_id=_field(item, "pspReference"),
        payment_reference=reference,
        actionable=True,
        fraud_type=_field(item, "reason"),
        amount=money_from(item.get("amount")),
    )
    additional = item.get("additionalData")
    codes = {
        name: str(additional[key])
        for key, name in _FRAUD_CODES.items()
        if isinstance(additional, Mapping) and additional.get(key)
    }
    return PspEvent(
        identifier,
        "fraud_warning",
        payment_reference=reference,
        raw_type=code,
        warning=warning,
        detail={"fraud_type": warning.fraud_type, **codes},
    )
