"""PSP webhook deliveries as tests make them: Stripe's signed refund events, Adyen's HMAC-signed
notification items, posted to the running service's /webhooks/<psp>."""

from __future__ import annotations

import json
import time
from typing import Any

import stripe

from adapters.psp import adyen_transformers as tf
from tests.conftest import Stack
from tests.helpers import GLOBEX_ADYEN_ACCOUNT, GLOBEX_HMAC, unique
from workers.psp_wiring.adyen import SANDBOX_ADYEN_MERCHANT_ACCOUNT


def refund_event(
    request_id: str | None, refund_id: str, status: str, amount: int = 100, payment: str | None = None
) -> str:
    """Stripe's `refund.updated`; without a request id, a refund made in Stripe's dashboard (no
    metadata of ours) of `payment`."""
    refund = {
        "id": refund_id,
        "object": "refund",
        "status": status,
        "amount": amount,
        "currency": "eur",
        "metadata": {"refund_request_id": request_id} if request_id else {},
    }
    if payment is not None:
        refund["payment_intent"] = payment
    return json.dumps(
        {"id": unique("evt"), "object": "event", "type": "refund.updated", "data": {"object": refund}}
    )


async def deliver(stack: Stack, payload: str, secret: str, at: int | None = None) -> tuple[int, Any]:
    header = stripe.WebhookSignature.generate_signature_header(
        payload, secret, timestamp=at or int(time.time())
    )
    response = await stack.http.post(
        "/webhooks/stripe",
        content=payload,
        headers={"Stripe-Signature": header, "content-type": "application/json"},
    )
    return response.status_code, response.json()


async def post(stack: Stack, provider: str, body: bytes, headers: dict[str, str] | None = None) -> Any:
    return await stack.http.post(
        f"/webhooks/{provider}", content=body, headers={"content-type": "application/json", **(headers or {})}
    )


def adyen_item(psp_reference: str, merchant_reference: str, key: str, **fields: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "pspReference": psp_reference,
        "originalReference": "",
        "merchantAccountCode": SANDBOX_ADYEN_MERCHANT_ACCOUNT,
        "merchantReference": merchant_reference,
        "amount": {"value": 1_000, "currency": "EUR"},
        "eventCode": "REFUND",
        "success": "true",
        "reason": "",
        **fields,
    }
    item["additionalData"] = {"hmacSignature": tf.hmac_signature(item, key)}
    return item


def globex_item(psp_reference: str, merchant_reference: str = "", **fields: Any) -> dict[str, Any]:
    """An item globex's own Adyen account signs: its merchant account, its HMAC key."""
    return adyen_item(
        psp_reference, merchant_reference, GLOBEX_HMAC, merchantAccountCode=GLOBEX_ADYEN_ACCOUNT, **fields
    )


def adyen_delivery(*items: dict[str, Any]) -> bytes:
    entries = [{"NotificationRequestItem": item} for item in items]
    return json.dumps({"live": "false", "notificationItems": entries}).encode()
