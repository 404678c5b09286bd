"""A typed client for the sandbox's control API, for tests and demos."""

from __future__ import annotations

from typing import Any

import httpx

from sandbox.control import ControlClient
from sandbox.stripe.engine import RefundBehavior


class SandboxControl(ControlClient):
    PREFIX = "/_sandbox"
    FAULT_PATHS = "/v1/"

    def healthy(self) -> bool:
        try:
            return bool(self._call("GET", "/health").get("ok"))
        except httpx.HTTPError:
            return False

    def seed_stripe_payment(
        self,
        *,
        amount: int,
        currency: str,
        captured: bool = True,
        payment_id: str | None = None,
        refund_behavior: RefundBehavior = "succeeded",
        settle_after_ms: int = 1000,
        metadata: dict[str, str] | None = None,
        settlement_currency: str | None = None,
        exchange_rate: str | None = None,
        refund_exchange_rate: str | None = None,
    ) -> str:
        """Create a PaymentIntent (and its charge); return the intent id (`pi_...`). `metadata["card"]`
        is the card's fingerprint (payments sharing it were paid with one card). With a
        `settlement_currency`, the merchant's balance is in it: the capture converts at
        `exchange_rate`, refunds at `refund_exchange_rate` (decimal strings, default the same)."""
        body: dict[str, Any] = {
            "provider": "stripe",
            "amount": amount,
            "currency": currency,
            "captured": captured,
            "refund_behavior": refund_behavior,
            "settle_after_ms": settle_after_ms,
            "metadata": metadata or {},
        }
        if payment_id is not None:
            body["id"] = payment_id
        if settlement_currency is not None:
            body |= {"settlement_currency": settlement_currency, "exchange_rate": exchange_rate}
            if refund_exchange_rate is not None:
                body["refund_exchange_rate"] = refund_exchange_rate
        return str(self._call("POST", "/payments", json=body)["payment_intent"]["id"])

    def early_fraud_warning(
        self,
        payment_id: str,
        *,
        fraud_type: str = "made_with_stolen_card",
        actionable: bool = True,
        warning_id: str | None = None,
    ) -> dict[str, Any]:
        """Radar warns of fraud on a PaymentIntent's charge: a signed `radar.early_fraud_warning.created`
        webhook follows (`.updated` for a `warning_id` given again); returns the warning."""
        body: dict[str, Any] = {"fraud_type": fraud_type, "actionable": actionable}
        if warning_id is not None:
            body["id"] = warning_id
        result: dict[str, Any] = self._call("POST", f"/payments/{payment_id}/early_fraud_warning", json=body)
        return result

    def open_stripe_dispute(self, payment_id: str, reason: str = "fraudulent") -> dict[str, Any]:
        """The cardholder disputes a PaymentIntent's charge: a signed `charge.dispute.created` webhook
        follows; returns the dispute."""
        result: dict[str, Any] = self._call(
            "POST", f"/payments/{payment_id}/dispute", json={"reason": reason}
        )
        return result

    def stripe_refunds(self, payment_id: str) -> list[dict[str, Any]]:
        """Every refund the sandbox ever made for a PaymentIntent, oldest first, with its key."""
        return list(self._call("GET", "/refunds", params={"payment_intent": payment_id})["data"])

    def settle_stripe_refund(
        self, refund_id: str, status: str = "succeeded", failure_reason: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"status": status}
        if failure_reason is not None:
            body["failure_reason"] = failure_reason
        result: dict[str, Any] = self._call("POST", f"/refunds/{refund_id}/settle", json=body)
        return result

    def fail_stripe_refund_late(self, refund_id: str, failure_reason: str | None = None) -> dict[str, Any]:
        """Fail a succeeded refund after the fact (`refund.failed` follows): refundable again."""
        body: dict[str, Any] = {} if failure_reason is None else {"failure_reason": failure_reason}
        result: dict[str, Any] = self._call("POST", f"/refunds/{refund_id}/fail", json=body)
        return result

    def events(self) -> list[dict[str, Any]]:
        """Webhook delivery attempts: event_id, type, url, attempt, http_status, error, at_ms."""
        return list(self._call("GET", "/events")["deliveries"])

    def webhook_events(self) -> list[dict[str, Any]]:
        """Webhook events with their payload and delivery state."""
        return list(self._call("GET", "/events")["events"])

    def set_stripe_webhook_url(self, url: str | None) -> None:
        self._call("POST", "/config", json={"stripe_webhook_url": url})

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/stats")
        return result

    def reset(self) -> None:
        self._call("POST", "/reset")
