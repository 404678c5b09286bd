"""The chaos run's hostile tenant: a second merchant with PSP accounts of its own (another sandbox,
its own keys and secrets), which signs, with its own accounts' secrets, every event that could move
another merchant's money, each naming a refund or payment of the default merchant's.

A merchant that configures its own PSP account knows that account's webhook secret (Stripe's
signing secret, Adyen's HMAC key), so it can sign any event it likes on its own route. PayPal signs
with its own certificate for the merchant's webhook id; the run has the sandbox sign what the tenant
wants for the tenant's webhook id, as a PayPal that signed anything would.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters.psp import adyen_transformers as tf
from adapters.psp.adyen import adyen_reference
from sandbox.adyen.api import mount_adyen
from sandbox.paypal.api import mount_paypal
from sandbox.paypal.control import PayPalSandboxControl
from sandbox.server import SandboxServer
from sandbox.stripe.objects import webhook_headers

NAME = "umbrella"
INBOUND_SECRET = "umbrella-inbound-secret"
STRIPE_KEY, STRIPE_WEBHOOK_SECRET = "sk_test_umbrella", "whsec_umbrella"
ADYEN_KEY, ADYEN_ACCOUNT, ADYEN_HMAC = "umbrella_adyen_key", "UmbrellaECOM", "11" * 32
PAYPAL_CLIENT, PAYPAL_SECRET, PAYPAL_WEBHOOK = "umbrella_paypal", "umbrella_paypal_secret", "WH-UMBRELLA"
# its policy refunds every early fraud warning it can: one it signs of another's payment must not
POLICY = 'version = "umbrella-1"\n\n[early_fraud_warnings]\nmode = "refund"\nrefund_up_to_major = 100000\n'


@dataclass(frozen=True)
class Victim:
    """A refund of the default merchant's, succeeded at its PSP, and its payment."""

    request_id: str
    provider: str
    payment: str
    psp_refund_id: str
    amount: int
    captured: int
    currency: str


@dataclass(frozen=True)
class Hostile:
    """One delivery the tenant sends on its own route: `kind` says what it tries."""

    kind: str  # dispute | failure | dashboard | warning | capture
    provider: str
    event_type: str  # the PSP's own name for it
    event_id: str
    body: bytes
    headers: dict[str, str]

    @property
    def path(self) -> str:
        return f"/webhooks/{self.provider}/{NAME}"


@dataclass
class Attack:
    """What the tenant sent naming one victim, and how the service answered each."""

    victim: Victim
    sent: list[tuple[Hostile, int]] = field(default_factory=list)  # the delivery, the HTTP status

    def acknowledged(self, kind: str) -> list[Hostile]:
        return [hostile for hostile, status in self.sent if hostile.kind == kind and status == 200]


@dataclass
class Tenant:
    data_dir: Path
    server: SandboxServer | None = None

    def start(self) -> Path:
        """Its PSP accounts up, its merchants file and policy written; the merchants file's path."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        server = SandboxServer(
            state_path=self.data_dir / "tenant-psps.db",
            stripe_api_key=STRIPE_KEY,
            stripe_webhook_secret=STRIPE_WEBHOOK_SECRET,
        )
        mount_adyen(server, api_key=ADYEN_KEY, merchant_account=ADYEN_ACCOUNT, hmac_key_hex=ADYEN_HMAC)
        mount_paypal(server, client_id=PAYPAL_CLIENT, client_secret=PAYPAL_SECRET, webhook_id=PAYPAL_WEBHOOK)
        self.server = server.start()
        policy = self.data_dir / "tenant-policy.toml"
        policy.write_text(POLICY, encoding="utf-8")
        merchants = self.data_dir / "merchants.toml"
        merchants.write_text(self._merchants(server.url, policy), encoding="utf-8")
        return merchants

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()

    @staticmethod
    def _merchants(url: str, policy: Path) -> str:
        return (
            f'[merchants.{NAME}]\ninbound_webhook_secret = "{INBOUND_SECRET}"\npolicy_file = "{policy}"\n'
            f'[merchants.{NAME}.stripe]\napi_key = "{STRIPE_KEY}"\n'
            f'webhook_secret = "{STRIPE_WEBHOOK_SECRET}"\napi_base = "{url}"\n'
            f'[merchants.{NAME}.adyen]\napi_key = "{ADYEN_KEY}"\nmerchant_account = "{ADYEN_ACCOUNT}"\n'
            f'hmac_key = "{ADYEN_HMAC}"\napi_base = "{url}/checkout"\n'
            f'[merchants.{NAME}.paypal]\nclient_id = "{PAYPAL_CLIENT}"\nclient_secret = "{PAYPAL_SECRET}"\n'
            f'webhook_id = "{PAYPAL_WEBHOOK}"\napi_base = "{url}"\n'
        )

    def deliveries(self, victim: Victim, paypal: PayPalSandboxControl) -> list[Hostile]:
        """What the tenant signs of this victim: a dispute of its payment, a failure of its refund, a
        dashboard refund of the whole payment, an early fraud warning (Stripe, Adyen), and a capture
        of ten times the payment (Adyen's payment book)."""
        match victim.provider:
            case "stripe":
                return _stripe(victim)
            case "adyen":
                return _adyen(victim)
            case _:
                return _paypal(victim, paypal)


def _id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:16]}"


def _stripe(victim: Victim) -> list[Hostile]:
    currency = victim.currency.lower()

    def event(kind: str, event_type: str, obj: dict[str, Any]) -> Hostile:
        event_id = _id("evt_umbrella_")
        body = json.dumps({"id": event_id, "object": "event", "type": event_type, "data": {"object": obj}})
        headers = webhook_headers(STRIPE_WEBHOOK_SECRET, body)
        return Hostile(kind, "stripe", event_type, event_id, body.encode(), headers)

    refund = {"object": "refund", "payment_intent": victim.payment, "charge": None, "currency": currency}
    return [
        event(
            "dispute",
            "charge.dispute.created",
            {
                "id": _id("dp_"),
                "object": "dispute",
                "payment_intent": victim.payment,
                "charge": None,
                "reason": "fraudulent",
                "amount": victim.captured,
                "currency": currency,
                "status": "needs_response",
            },
        ),
        event(
            "failure",
            "refund.updated",
            refund
            | {
                "id": victim.psp_refund_id,
                "status": "failed",
                "amount": victim.amount,
                "metadata": {"refund_request_id": victim.request_id},
            },
        ),
        event(
            "dashboard",
            "refund.updated",
            refund | {"id": _id("re_"), "status": "succeeded", "amount": victim.captured, "metadata": {}},
        ),
        event(
            "warning",
            "radar.early_fraud_warning.created",
            {
                "id": _id("issfr_"),
                "object": "radar.early_fraud_warning",
                "actionable": True,
                "charge": _id("ch_"),
                "payment_intent": victim.payment,
                "fraud_type": "made_with_stolen_card",
            },
        ),
    ]


def _adyen(victim: Victim) -> list[Hostile]:
    def item(kind: str, **fields: Any) -> Hostile:
        notification: dict[str, Any] = {
            "pspReference": _id("UMB").upper(),
            "originalReference": victim.payment,
            "merchantAccountCode": ADYEN_ACCOUNT,
            "merchantReference": "",
            "amount": {"value": victim.captured, "currency": victim.currency},
            "eventCode": "REFUND",
            "success": "true",
            "reason": "",
            **fields,
        }
        notification["additionalData"] = {"hmacSignature": tf.hmac_signature(notification, ADYEN_HMAC)}
        body = json.dumps({"live": "false", "notificationItems": [{"NotificationRequestItem": notification}]})
        code, reference = str(notification["eventCode"]), str(notification["pspReference"])
        return Hostile(kind, "adyen", code, reference, body.encode(), {})

    return [
        item("dispute", eventCode="CHARGEBACK"),
        item(
            "failure",
            pspReference=victim.psp_refund_id,
            merchantReference=adyen_reference(victim.request_id),  # as our own refund's reads
            success="false",
            amount={"value": victim.amount, "currency": victim.currency},
        ),
        item("dashboard"),
        item("warning", eventCode="NOTIFICATION_OF_FRAUD"),
        item(
            "capture",
            eventCode="CAPTURE",
            amount={"value": victim.captured * 10, "currency": victim.currency},
        ),
    ]


def _paypal(victim: Victim, paypal: PayPalSandboxControl) -> list[Hostile]:
    value = f"{victim.amount // 100}.{victim.amount % 100:02d}"
    whole = f"{victim.captured // 100}.{victim.captured % 100:02d}"
    up = [{"rel": "up", "href": f"https://api.paypal.com/v2/payments/captures/{victim.payment}"}]

    def event(kind: str, event_type: str, resource: dict[str, Any]) -> Hostile:
        event_id = _id("WH-UMBRELLA-")
        body = json.dumps({"id": event_id, "event_type": event_type, "resource": resource})
        headers = paypal.sign(body, webhook_id=PAYPAL_WEBHOOK)
        return Hostile(kind, "paypal", event_type, event_id, body.encode(), headers)

    return [
        event(
            "dispute",
            "CUSTOMER.DISPUTE.CREATED",
            {
                "dispute_id": _id("PP-D-"),
                "reason": "UNAUTHORISED",
                "disputed_transactions": [{"seller_transaction_id": victim.payment}],
            },
        ),
        event(
            "failure",
            "PAYMENT.REFUND.FAILED",
            {
                "id": victim.psp_refund_id,
                "status": "FAILED",
                "custom_id": victim.request_id,
                "invoice_id": victim.request_id,
                "amount": {"value": value, "currency_code": victim.currency},
                "links": up,
            },
        ),
        event(
            "dashboard",
            "PAYMENT.CAPTURE.REFUNDED",
            {
                "id": _id("UMBRELLA").upper(),
                "status": "COMPLETED",
                "amount": {"value": whole, "currency_code": victim.currency},
                "links": up,
            },
        ),
    ]
