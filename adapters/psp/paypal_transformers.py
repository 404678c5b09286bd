"""PayPal resources to our contracts and back: pure functions, no I/O. No PayPal field name leaves here
or `paypal.py` beside it.

Resources are PayPal's JSON (the SDK's response text, decoded), not the SDK's model objects, so what
PayPal sends and what we read are the same thing.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from adapters.psp.base import PspEvent
from domain.contracts import PaymentRecord, PspRefundCall, PspRefundUpdate, RefundResult
from domain.money import Money, currency_exponent
from domain.naming import ALIAS_PREFIX
from domain.reconciliation import PspRefundRecord
from domain.status import ErrorCode, PaymentState, Provider, PspRefundStatus, RefundMethod

# amounts ----------------------------------------------------------------------------------------

# PayPal's currency codes page (developer.paypal.com/api/rest/reference/currency-codes): the only
# currencies PayPal accepts, with the decimals it accepts. HUF, JPY and TWD take no decimals at PayPal
# ("decimal amounts cause an error"), though ISO 4217 gives HUF and TWD two. BRL, CNY, INR and MYR are
# in-country only: PayPal refuses them for other accounts, which is its answer to give, not ours.
# Not listed, so refused here: KWD, BHD, CLP, KRW, ... (no three-decimal currency at all).
PAYPAL_EXPONENTS: dict[str, int] = {
    **dict.fromkeys(
        [
            "AUD",
            "BRL",
            "CAD",
            "CHF",
            "CNY",
            "CZK",
            "DKK",
            "EUR",
            "GBP",
            "HKD",
            "ILS",
            "INR",
            "MXN",
            "MYR",
            "NOK",
            "NZD",
            "PHP",
            "PLN",
            "SEK",
            "SGD",
            "THB",
            "USD",
        ],
        2,
    ),
    **dict.fromkeys(["HUF", "JPY", "TWD"], 0),
}
_MAX_VALUE_CHARS = 32  # PayPal's `value` maxLength


def to_paypal_value(money: Money) -> str | None:
    """Our (ISO 4217) minor units as PayPal's exact decimal string, or None when PayPal cannot take it.

    1250 EUR -> "12.50"; 500 JPY -> "500"; 1500 HUF (15.00 Ft) -> "15"; 1550 HUF -> None; KWD -> None.
    """
    paypal_exponent = PAYPAL_EXPONENTS.get(money.currency.upper())
    if paypal_exponent is None:
        return None
    major = Decimal(money.value).scaleb(-currency_exponent(money.currency))
    quantum = Decimal(1).scaleb(-paypal_exponent)
    if major != major.quantize(quantum):
        return None
    text = f"{major:.{paypal_exponent}f}"
    return text if len(text) <= _MAX_VALUE_CHARS else None


def from_paypal_value(value: str, currency: str) -> int | None:
    """PayPal's decimal string in our minor units; None when it is not an exact amount of them."""
    try:
        major = Decimal(value)
    except InvalidOperation:
        return None
    if not major.is_finite() or major < 0:
        return None
    minor = major.scaleb(currency_exponent(currency))
    if minor != minor.to_integral_value():
        return None
    return int(minor)


def money_from(amount: Any, fallback: Money | None = None) -> Money:
    """PayPal's `{currency_code, value}` as our Money (the fallback when absent or unreadable)."""
    if isinstance(amount, Mapping):
        currency = str(amount.get("currency_code") or "").upper()
        minor = from_paypal_value(str(amount.get("value") or ""), currency) if currency else None
        if minor is not None:
            return Money(value=minor, currency=currency)
    if fallback is not None:
        return fallback
    raise ValueError(f"not a PayPal amount: {amount!r}")


def money_or_unknown(amount: Any) -> Money:
    """PayPal's amount as Money; zero "XXX" (ISO's "no currency") when absent or unreadable."""
    return money_from(amount, Money(value=0, currency="XXX"))


def money_or_none(amount: Any) -> Money | None:
    try:
        return money_from(amount)
    except ValueError:
        return None


def _minor(amount: Any) -> tuple[int, str]:
    try:
        money = money_from(amount)
    except ValueError:
        return 0, ""
    return money.value, money.currency


def fee_given_back(breakdown: Any, currency: str) -> Money | None:
    """The fee PayPal gave back with a refund (`seller_payable_breakdown.paypal_fee`), in the
    currency the seller's balance moved in (`paypal_fee_in_receivable_currency` when converted)."""
    if not isinstance(breakdown, Mapping):
        return None
    converted = money_or_none(breakdown.get("net_amount_in_receivable_currency"))
    key = (
        "paypal_fee_in_receivable_currency"
        if converted and converted.currency != currency.upper()
        else "paypal_fee"
    )
    fee = money_or_none(breakdown.get(key))
    return fee if fee is not None and fee.value > 0 else None


# payments ---------------------------------------------------------------------------------------


def settled_in_receivable(breakdown: Any, net_key: str, currency: str) -> Money | None:
    """What a capture (or a refund) came to in the seller's receivable currency, gross, when PayPal
    converted it (`seller_receivable_breakdown.receivable_amount`, or a refund's
    `seller_payable_breakdown.net_amount_in_receivable_currency`, plus the fee converted there):
    None when it was received in its own currency."""
    if not isinstance(breakdown, Mapping):
        return None
    net = money_or_none(breakdown.get(net_key))
    if net is None or net.currency == currency.upper():
        return None
    fee = money_or_none(breakdown.get("paypal_fee_in_receivable_currency"))
    return Money(
        value=net.value + (fee.value if fee is not None and fee.currency == net.currency else 0),
        currency=net.currency,
    )


def payment_from_capture(capture: Mapping[str, Any], refunded: int | None) -> PaymentRecord:
    """A capture as our PaymentRecord. The capture resource carries no refunded total: `refunded`
    is what the caller summed from the order's refunds (None: unknown, PayPal remains the guard).
    """
    reference = str(capture["id"])
    captured, currency = _minor(capture.get("amount"))
    match capture.get("status"):
        case "COMPLETED" | "PARTIALLY_REFUNDED":
            return PaymentRecord(
                provider=Provider.PAYPAL,
                reference=reference,
                state=PaymentState.CAPTURED,
                currency=currency,
                amount_captured=captured,
                amount_refunded=min(refunded or 0, captured),
                created_at=_time(capture.get("create_time")),
                settlement=settled_in_receivable(
                    capture.get("seller_receivable_breakdown"), "receivable_amount", currency
                ),
            )
        case "REFUNDED":
            return PaymentRecord(
                provider=Provider.PAYPAL,
                reference=reference,
                state=PaymentState.CAPTURED,
                currency=currency,
                amount_captured=captured,
                amount_refunded=captured,
                created_at=_time(capture.get("create_time")),
                settlement=settled_in_receivable(
                    capture.get("seller_receivable_breakdown"), "receivable_amount", currency
                ),
            )
        case "PENDING" | "DECLINED" | "FAILED":
            return PaymentRecord(
                provider=Provider.PAYPAL, reference=reference, state=PaymentState.OTHER, currency=currency
            )
        case _:
            return PaymentRecord(
                provider=Provider.PAYPAL, reference=reference, state=PaymentState.OTHER, currency=currency
            )


def payment_from_authorization(authorization: Mapping[str, Any]) -> PaymentRecord:
    reference = str(authorization["id"])
    amount, currency = _minor(authorization.get("amount"))
    match authorization.get("status"):
        case "CREATED":
            return PaymentRecord(
                provider=Provider.PAYPAL,
                reference=reference,
                state=PaymentState.AUTHORIZED,
                currency=currency,
                amount_authorized=amount,
            )
        case "VOIDED" | "EXPIRED":
            return PaymentRecord(
                provider=Provider.PAYPAL, reference=reference, state=PaymentState.CANCELED, currency=currency
            )
        case "CAPTURED" | "PARTIALLY_CAPTURED" | "DENIED" | "PENDING":
            # Captured: refund the capture (its own id), not the authorisation.
            return PaymentRecord(
                provider=Provider.PAYPAL, reference=reference, state=PaymentState.OTHER, currency=currency
            )
        case _:
            return PaymentRecord(
                provider=Provider.PAYPAL, reference=reference, state=PaymentState.OTHER, currency=currency
            )


def not_found(reference: str) -> PaymentRecord:
    return PaymentRecord(provider=Provider.PAYPAL, reference=reference, state=PaymentState.NOT_FOUND)


def order_id(capture: Mapping[str, Any]) -> str | None:
    supplementary = capture.get("supplementary_data")
    related = supplementary.get("related_ids") if isinstance(supplementary, Mapping) else None
    value = related.get("order_id") if isinstance(related, Mapping) else None
    return str(value) if value else None


def _link(resource: Mapping[str, Any], rel: str) -> str | None:
    for link in resource.get("links") or []:
        if isinstance(link, Mapping) and link.get("rel") == rel and link.get("href"):
            return str(link["href"])
    return None


def refund_capture_id(refund: Mapping[str, Any]) -> str | None:
    """The capture a refund belongs to, from its `up` link (`.../v2/payments/captures/<id>`)."""
    up = _link(refund, "up")
    if up is None or "/captures/" not in up:
        return None
    return up.rstrip("/").rsplit("/", 1)[-1] or None


def capture_refunds(order: Mapping[str, Any], capture_id: str) -> list[Mapping[str, Any]]:
    """The refunds the order lists for one capture (all of them when they carry no `up` link)."""
    refunds: list[Mapping[str, Any]] = []
    for unit in order.get("purchase_units") or []:
        payments = unit.get("payments") if isinstance(unit, Mapping) else None
        listed = payments.get("refunds") if isinstance(payments, Mapping) else None
        for refund in listed or []:
            if isinstance(refund, Mapping) and refund_capture_id(refund) in (capture_id, None):
                refunds.append(refund)
    return refunds


def refunded_total(refunds: Sequence[Mapping[str, Any]], currency: str) -> int:
    """Money that refunds hold: completed and pending ones (failed or cancelled gave it back)."""
    total = 0
    for refund in refunds:
        if refund_status(refund.get("status")) is PspRefundStatus.FAILED:
            continue
        value, refund_currency = _minor(refund.get("amount"))
        if refund_currency == currency:
            total += value
    return total


# refunds ----------------------------------------------------------------------------------------


# PayPal's published refund `custom_id`: at most 127 of these characters (payments v2 `refund`)
_PAYPAL_ID = re.compile(r"[A-Za-z0-9\-_.,]{1,127}")


def paypal_reference(request_id: str) -> str:
    """Our request id as PayPal takes it, or a fixed alias of it (resolved through the reference
    book) where it has a character PayPal refuses (a merchant's `~`, a `:`) or is too long."""
    if _PAYPAL_ID.fullmatch(request_id):
        return request_id
    return ALIAS_PREFIX + hashlib.sha256(request_id.encode()).hexdigest()


def refund_body(call: PspRefundCall, value: str) -> dict[str, Any]:
    """RefundRequest fields: our request id (or its alias) in both `invoice_id` and `custom_id`, so
    it can be found."""
    reference = paypal_reference(call.request_id)
    return {
        "amount": {"currency_code": call.amount.currency, "value": value},
        "invoice_id": reference,
        "custom_id": reference,
        "note_to_payer": f"Refund {call.reason_code}"[:255],
    }


def refund_status(status: Any) -> PspRefundStatus:
    match status:
        case "COMPLETED":
            return PspRefundStatus.SUCCEEDED
        case "PENDING":
            return PspRefundStatus.PENDING
        case "CANCELLED" | "FAILED":
            return PspRefundStatus.FAILED
        case _:
            # Unknown to us: keep waiting for a status we understand rather than decide.
            return PspRefundStatus.PENDING


def refund_failure(refund: Mapping[str, Any]) -> tuple[ErrorCode | None, str]:
    if refund_status(refund.get("status")) is not PspRefundStatus.FAILED:
        return None, ""
    details = refund.get("status_details")
    reason = details.get("reason") if isinstance(details, Mapping) else None
    return ErrorCode.PSP_DECLINED, str(reason or refund.get("status") or "FAILED")


def refund_request_id(refund: Mapping[str, Any]) -> str | None:
    value = refund.get("custom_id") or refund.get("invoice_id")
    return str(value) if value else None


def refund_record(refund: Mapping[str, Any], capture_id: str) -> PspRefundRecord:
    return PspRefundRecord(
        psp_refund_id=str(refund["id"]),
        payment_reference=capture_id,
        amount=money_or_unknown(refund.get("amount")),
        status=refund_status(refund.get("status")),
    )


def _time(value: Any) -> datetime | None:
    """PayPal's RFC 3339 time (`2026-11-25T12:00:00Z`); None when absent or unreadable."""
    try:
        return datetime.fromisoformat(str(value or "").replace("Z", "+00:00"))
    except ValueError:
        return None


def created_since(refund: Mapping[str, Any], since: datetime) -> bool:
    """True when the refund was created at or after `since` (or PayPal did not say when)."""
    created = _time(refund.get("create_time"))
    return created is None or created >= since


def refund_result(
    refund: Mapping[str, Any],
    *,
    fallback_amount: Money | None = None,
    psp_request_id: str | None,
    psp_response_ms: int | None,
    adopted: bool = False,
) -> RefundResult:
    failure_code, failure_message = refund_failure(refund)
    amount = money_from(refund.get("amount"), fallback_amount)
    return RefundResult(
        psp_refund_id=str(refund["id"]),
        status=refund_status(refund.get("status")),
        amount=amount,
        settlement=settled_in_receivable(
            refund.get("seller_payable_breakdown"), "net_amount_in_receivable_currency", amount.currency
        ),
        fee_returned=fee_given_back(refund.get("seller_payable_breakdown"), amount.currency),
        method=RefundMethod.REFUND,
        failure_code=failure_code,
        failure_message=failure_message,
        psp_request_id=psp_request_id,
        psp_response_ms=psp_response_ms,
        adopted=adopted,
        payment_reference=refund_capture_id(refund),
    )


def void_result(
    authorization: Mapping[str, Any],
    *,
    fallback_amount: Money,
    psp_request_id: str | None,
    psp_response_ms: int | None,
    adopted: bool = False,
) -> RefundResult:
    """A VOIDED authorisation is a successful void; any other state means it is not voided."""
    voided = authorization.get("status") == "VOIDED"
    return RefundResult(
        psp_refund_id=str(authorization["id"]),
        status=PspRefundStatus.SUCCEEDED if voided else PspRefundStatus.PENDING,
        amount=money_from(authorization.get("amount"), fallback_amount),
        method=RefundMethod.VOID,
        psp_request_id=psp_request_id,
        psp_response_ms=psp_response_ms,
        adopted=adopted,
    )


def made_for(refund: Mapping[str, Any], request_id: str) -> bool:
    """Whether the refund carries our request id, as sent now (alias where needed) or before."""
    return refund_request_id(refund) in (request_id, paypal_reference(request_id))


def pick_refund(refunds: Sequence[Mapping[str, Any]], request_id: str) -> Mapping[str, Any] | None:
    """The refund made for our request: a live one before a failed one (there should be one)."""
    ours = [refund for refund in refunds if made_for(refund, request_id)]
    live = [r for r in ours if refund_status(r.get("status")) is not PspRefundStatus.FAILED]
    candidates = live or ours
    return candidates[0] if candidates else None


# errors -----------------------------------------------------------------------------------------


def error_issue(body: Mapping[str, Any] | None) -> str | None:
    """The first `details[].issue` of a PayPal error body, else its `name`."""
    if not body:
        return None
    for detail in body.get("details") or []:
        if isinstance(detail, Mapping) and detail.get("issue"):
            return str(detail["issue"])
    name = body.get("name")
    return str(name) if name else None


def error_message(body: Mapping[str, Any] | None) -> str:
    if not body:
        return ""
    for detail in body.get("details") or []:
        if isinstance(detail, Mapping) and detail.get("description"):
            return str(detail["description"])
    return str(body.get("message") or "")


def decline_code(issue: str | None) -> ErrorCode:
    """What a PayPal 422 refusal of a refund or void means to us."""
    match issue:
        case "REFUND_AMOUNT_EXCEEDED":
            return ErrorCode.REFUND_EXCEEDS_CAPTURE
        case "CAPTURE_FULLY_REFUNDED" | "PREVIOUSLY_VOIDED":
            return ErrorCode.ALREADY_REFUNDED
        case "RESOURCE_NOT_FOUND" | "INVALID_RESOURCE_ID":
            return ErrorCode.PAYMENT_NOT_FOUND
        case _:
            return ErrorCode.PSP_DECLINED


# webhooks ---------------------------------------------------------------------------------------


def _dispute_payment(resource: Mapping[str, Any]) -> str | None:
    for transaction in resource.get("disputed_transactions") or []:
        if isinstance(transaction, Mapping) and transaction.get("seller_transaction_id"):
            return str(transaction["seller_transaction_id"])
    return None


def classify_event(event: Mapping[str, Any]) -> PspEvent:
    """A verified PayPal event as ours. Exhaustive: anything not named below is ignored, explicitly."""
    event_id = str(event.get("id") or "")
    event_type = str(event.get("event_type") or "")
    resource = event.get("resource")
    if not isinstance(resource, Mapping):
        return PspEvent(event_id, "ignored", raw_type=event_type, detail={"why": "no resource"})
    match event_type:
        case (
            "PAYMENT.CAPTURE.REFUNDED"
            | "PAYMENT.REFUND.PENDING"
            | "PAYMENT.REFUND.FAILED"
            | ("PAYMENT.REFUND.CANCELLED")
        ):
            if "id" not in resource:
                return PspEvent(event_id, "ignored", raw_type=event_type, detail={"why": "no refund"})
            # No custom_id: a refund made in PayPal's dashboard, reported with what it needs to be
            # adopted into the books (request_id None).
            request_id = refund_request_id(resource)
            failure_code, failure_message = refund_failure(resource)
            return PspEvent(
                event_id=event_id,
                kind="refund_update",
                request_id=request_id,
                update=PspRefundUpdate(
                    psp_refund_id=str(resource["id"]),
                    status=refund_status(resource.get("status")),
                    failure_code=failure_code,
                    failure_message=failure_message,
                    psp_event_id=event_id,
                    amount=None if request_id else money_or_none(resource.get("amount")),
                ),
                payment_reference=refund_capture_id(resource),
                raw_type=event_type,
                detail={"psp_status": str(resource.get("status"))},
            )
        case "PAYMENT.CAPTURE.REVERSED":
            # PayPal took the capture's money back (a chargeback, dispute or fraud hold decided against
            # the merchant). Not a refund of ours: it shrinks what can still be refunded, like a dispute.
            return PspEvent(
                event_id=event_id,
                kind="dispute_opened",
                payment_reference=refund_capture_id(resource),
                raw_type=event_type,
                detail={"reversal_id": str(resource.get("id") or ""), "why": "capture reversed"},
            )
        case "PAYMENT.AUTHORIZATION.VOIDED":
            # A void carries no field of ours: the core finds the refund by psp_refund_id (the
            # authorisation id). The void call itself already answered VOIDED synchronously.
            if "id" not in resource:
                return PspEvent(event_id, "ignored", raw_type=event_type, detail={"why": "no authorization"})
            return PspEvent(
                event_id=event_id,
                kind="refund_update",
                request_id=None,
                update=PspRefundUpdate(
                    psp_refund_id=str(resource["id"]),
                    status=PspRefundStatus.SUCCEEDED,
                    psp_event_id=event_id,
                ),
                payment_reference=str(resource["id"]),
                raw_type=event_type,
                detail={"psp_status": str(resource.get("status"))},
            )
        case "CUSTOMER.DISPUTE.CREATED":
            return PspEvent(
                event_id=event_id,
                kind="dispute_opened",
                payment_reference=_dispute_payment(resource),
                raw_type=event_type,
                detail={
                    "dispute_id": str(resource.get("dispute_id") or ""),
                    "reason": str(resource.get("reason") or ""),
                },
            )
        case _:
            return PspEvent(event_id, "ignored", raw_type=event_type, detail={"why": "event type"})


# Transaction Search -------------------------------------------------------------------------------

REFUND_EVENT_CODE = "T1107"  # "Payment refund, initiated by merchant" (PayPal's event codes)
SEARCH_WINDOW = timedelta(days=31)  # the longest range PayPal searches at once
SEARCH_PAGE_SIZE = 500  # PayPal's largest page
SEARCH_PAGES = 1_000  # half a million refunds per window: more is a report's job
_SEARCH_STATUS = {
    "S": PspRefundStatus.SUCCEEDED,
    "P": PspRefundStatus.PENDING,
    "D": PspRefundStatus.FAILED,  # denied
    "V": PspRefundStatus.FAILED,  # reversed: the money went back
}


def search_windows(since: datetime, until: datetime) -> list[tuple[datetime, datetime]]:
    windows = []
    start = since
    while start < until:
        windows.append((start, min(start + SEARCH_WINDOW, until)))
        start += SEARCH_WINDOW
    return windows


def search_time(at: datetime) -> str:
    """RFC 3339 with seconds, as the search requires."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def searched_refunds(body: Mapping[str, Any]) -> list[PspRefundRecord]:
    """The refund transactions of a search answer: `transaction_id` the refund, `paypal_reference_id`
    the capture it refunds, `transaction_amount` negative (money out)."""
    records = []
    for detail in body.get("transaction_details") or []:
        info = detail.get("transaction_info") if isinstance(detail, Mapping) else None
        if not isinstance(info, Mapping) or info.get("transaction_event_code") != REFUND_EVENT_CODE:
            continue
        amount = money_or_none(_unsigned(info.get("transaction_amount")))
        refund_id, capture_id = (
            str(info.get("transaction_id") or ""),
            str(info.get("paypal_reference_id") or ""),
        )
        status = _SEARCH_STATUS.get(str(info.get("transaction_status") or ""))
        if amount is None or not refund_id or not capture_id or status is None:
            continue
        records.append(
            PspRefundRecord(
                psp_refund_id=refund_id, payment_reference=capture_id, amount=amount, status=status
            )
        )
    return records


def _unsigned(amount: Any) -> Any:
    if isinstance(amount, Mapping) and str(amount.get("value") or "").startswith("-"):
        return {**amount, "value": str(amount["value"])[1:]}
    return amount
