"""The PSP sandbox as the chaos run uses it: seed payments, inject faults, replay webhooks the PSPs
sent (verbatim, re-signed where the PSP signs per attempt), and read its refunds as ground truth."""

from __future__ import annotations

import json
from dataclasses import dataclass

import httpx

from sandbox.adyen.control import AdyenSandboxControl
from sandbox.faults import FaultKind
from sandbox.paypal.control import PayPalSandboxControl
from sandbox.paypal.engine import PayPalRefundBehavior, format_amount, parse_amount
from sandbox.stripe.control import SandboxControl
from sandbox.stripe.engine import RefundBehavior
from sandbox.stripe.objects import webhook_headers
from workers.psp_wiring.stripe import SANDBOX_STRIPE_API_KEY, SANDBOX_STRIPE_WEBHOOK_SECRET

PROVIDERS = ("stripe", "adyen", "paypal")
# where each PSP's faults apply: its refund calls and its payment lookups
FAULT_PATHS = {
    "stripe": ("/v1/refunds", "/v1/payment_intents"),
    "adyen": ("/checkout/",),
    "paypal": ("/v2/payments/",),
}


@dataclass(frozen=True)
class PspRefund:
    """One refund as the PSP holds it; `standing` when it moves (or will move) money."""

    psp_refund_id: str
    amount: int
    status: str
    standing: bool


@dataclass(frozen=True)
class Delivery:
    """A webhook the sandbox sent (or tried to): enough to send it again."""

    provider: str
    event_id: str
    state: str
    body: str


class Psps:
    def __init__(self, sandbox_url: str, service_url: str) -> None:
        self.stripe = SandboxControl(sandbox_url)
        self.adyen = AdyenSandboxControl(sandbox_url)
        self.paypal = PayPalSandboxControl(sandbox_url)
        self._service = httpx.Client(base_url=service_url, timeout=10)
        self._stripe_api = httpx.Client(
            base_url=sandbox_url, timeout=10, headers={"Authorization": f"Bearer {SANDBOX_STRIPE_API_KEY}"}
        )

    def close(self) -> None:
        for client in (self.stripe, self.adyen, self.paypal):
            client.close()
        self._service.close()
        self._stripe_api.close()

    # seeding ------------------------------------------------------------------------------------

    def seed(self, provider: str, amount: int, currency: str, behavior: str, held: bool = False) -> str:
        """A captured payment of `amount` minor units; its PSP reference. `behavior`: ok, pending
        (settled later, successfully) or fails (settled later as failed); `held` (Stripe, PayPal): its
        refunds stay pending until `settle_held`."""
        if held and provider != "adyen":
            behavior = "held"
        if provider == "stripe":
            stripe_behavior: RefundBehavior = {
                "ok": "succeeded",
                "pending": "pending_then_succeeded",
                "fails": "pending_then_failed",
                "held": "pending",
            }[behavior]  # type: ignore[assignment]
            return self.stripe.seed_stripe_payment(
                amount=amount, currency=currency, refund_behavior=stripe_behavior, settle_after_ms=1500
            )
        if provider == "paypal":
            paypal_behavior: PayPalRefundBehavior = {
                "ok": "completed",
                "pending": "pending_then_completed",
                "fails": "pending_then_failed",
                "held": "pending",
            }[behavior]  # type: ignore[assignment]
            value = format_amount(amount, currency)["value"]
            return self.paypal.seed_capture(
                amount=value, currency=currency, refund_behavior=paypal_behavior, settle_after_ms=1500
            )
        return self.adyen.seed_payment(amount=amount, currency=currency)

    def settle_held(self, provider: str, payment: str, succeeded: bool) -> list[str]:
        """Settle every refund still pending on a held payment (as the PSP would, later); their ids."""
        settled = []
        if provider == "stripe":
            for refund in self.stripe.stripe_refunds(payment):
                if refund["status"] == "pending":
                    self.stripe.settle_stripe_refund(refund["id"], "succeeded" if succeeded else "failed")
                    settled.append(str(refund["id"]))
        elif provider == "paypal":
            for refund in self.paypal.refunds(payment):
                if refund["status"] == "PENDING" and refund.get("kind", "refund") == "refund":
                    self.paypal.settle_refund(refund["id"], "COMPLETED" if succeeded else "FAILED")
                    settled.append(str(refund["id"]))
        return settled

    def stripe_dashboard_refund(self, payment: str, amount: int, key: str) -> str:
        """A refund made in Stripe's dashboard: through Stripe's own API, with no metadata of ours,
        under the idempotency key given; its id."""
        response = self._stripe_api.post(
            "/v1/refunds",
            data={"payment_intent": payment, "amount": str(amount)},
            headers={"Idempotency-Key": key},
        )
        response.raise_for_status()
        return str(response.json()["id"])

    def adyen_payment_announced(self, psp_reference: str, redelivered: set[str]) -> bool:
        """Its AUTHORISATION and CAPTURE notifications were accepted by the service (from the sandbox,
        or sent again by us once the sandbox gave up)."""
        notes = self.adyen.notifications(psp_reference)
        mine = [n for n in notes if n["event_code"] in ("AUTHORISATION", "CAPTURE")]
        return len(mine) >= 2 and all(n["state"] == "delivered" or n["id"] in redelivered for n in mine)

    def adyen_refund_reference(self, payment: str) -> str | None:
        found = [m for m in self.adyen.modifications(payment) if m["kind"] == "refund"]
        standing = [m for m in found if m["status"] == "succeeded"]
        return str(standing[0]["psp_reference"]) if standing else None

    def stripe_refund_id(self, payment: str) -> str | None:
        standing = [r for r in self.stripe.stripe_refunds(payment) if r["status"] == "succeeded"]
        return str(standing[0]["id"]) if standing else None

    # faults -------------------------------------------------------------------------------------

    def inject(
        self, provider: str, kind: FaultKind, path_prefix: str, method: str | None, count: int, millis: int
    ) -> None:
        client = {"stripe": self.stripe, "adyen": self.adyen, "paypal": self.paypal}[provider]
        client.inject_fault(
            kind,
            count=count,
            path_prefix=path_prefix,
            method=method,
            retry_after=millis / 1000,
            delay_ms=millis,
        )

    def clear_faults(self) -> None:
        self.stripe.clear_faults()

    # webhooks -----------------------------------------------------------------------------------

    def deliveries(self, provider: str) -> list[Delivery]:
        if provider == "stripe":
            return [
                Delivery("stripe", e["id"], e["state"], json.dumps(e["payload"]))
                for e in self.stripe.webhook_events()
            ]
        if provider == "paypal":
            return [
                Delivery("paypal", e["id"], e["state"], json.dumps(e["payload"]))
                for e in self.paypal.events()
            ]
        return [
            Delivery("adyen", n["id"], n["state"], json.dumps(n["payload"]))
            for n in self.adyen.notifications()
        ]

    def send(self, delivery: Delivery) -> int:
        """POST a webhook to the service again, signed as the PSP signs it; the HTTP status."""
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if delivery.provider == "stripe":
            headers |= webhook_headers(SANDBOX_STRIPE_WEBHOOK_SECRET, delivery.body)
        elif delivery.provider == "paypal":
            headers |= self.paypal.sign(delivery.body)
        # Adyen signs each notification item inside the body: it goes again as it is
        response = self._service.post(
            f"/webhooks/{delivery.provider}", content=delivery.body, headers=headers
        )
        return response.status_code

    # ground truth -------------------------------------------------------------------------------

    def refunds_of(self, provider: str, payment: str) -> list[PspRefund]:
        """Every refund the PSP made on the payment."""
        if provider == "stripe":
            return [
                PspRefund(r["id"], int(r["amount"]), r["status"], r["status"] in ("succeeded", "pending"))
                for r in self.stripe.stripe_refunds(payment)
            ]
        if provider == "paypal":
            return [
                PspRefund(
                    r["id"],
                    parse_amount(r["amount"]["value"], r["amount"]["currency_code"])[0],
                    r["status"],
                    r["status"] in ("COMPLETED", "PENDING"),
                )
                for r in self.paypal.refunds(payment)
                if r.get("kind", "refund") == "refund"
            ]
        return [
            PspRefund(m["psp_reference"], int(m["amount"]), m["status"], m["status"] == "succeeded")
            for m in self.adyen.modifications(payment)
            if m["kind"] in ("refund", "reversal")
        ]
