"""A typed client for the PayPal sandbox's control API (`/_sandbox/paypal/...`), for tests and demos."""

from __future__ import annotations

from typing import Any

from sandbox.control import ControlClient
from sandbox.paypal.engine import PayPalRefundBehavior


class PayPalSandboxControl(ControlClient):
    PREFIX = "/_sandbox/paypal"
    FAULT_PATHS = "/v2/payments/"

    def seed_capture(
        self,
        *,
        amount: str,
        currency: str,
        refund_behavior: PayPalRefundBehavior = "completed",
        settle_after_ms: int = 1000,
        capture_id: str | None = None,
        receivable_currency: str | None = None,
        exchange_rate: str | None = None,
        refund_exchange_rate: str | None = None,
        returns_fees: bool = False,
    ) -> str:
        """A COMPLETED capture of `amount` (PayPal's decimal string, e.g. "12.50"); its id. With
        `receivable_currency`, the seller receives it converted at `exchange_rate` and pays its
        refunds at `refund_exchange_rate` (decimal strings; the same by default)."""
        body: dict[str, Any] = {
            "amount": amount,
            "currency": currency,
            "refund_behavior": refund_behavior,
            "settle_after_ms": settle_after_ms,
        }
        if returns_fees:  # a refund gives back its share of the capture's fee
            body["returns_fees"] = True
        if receivable_currency is not None:
            body |= {"receivable_currency": receivable_currency, "exchange_rate": exchange_rate}
            if refund_exchange_rate is not None:
                body["refund_exchange_rate"] = refund_exchange_rate
        if capture_id is not None:
            body["id"] = capture_id
        return str(self._call("POST", "captures", json=body)["id"])

    def seed_authorization(self, *, amount: str, currency: str, authorization_id: str | None = None) -> str:
        """A CREATED (voidable) authorisation; its id."""
        body: dict[str, Any] = {"amount": amount, "currency": currency}
        if authorization_id is not None:
            body["id"] = authorization_id
        return str(self._call("POST", "authorizations", json=body)["id"])

    def refunds(self, capture_id: str) -> list[dict[str, Any]]:
        """Every refund and reversal of the capture, oldest first, with `paypal_request_id` and `kind`."""
        return list(self._call("GET", f"captures/{capture_id}/refunds")["refunds"])

    def settle_refund(
        self, refund_id: str, status: str = "COMPLETED", reason: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"status": status}
        if reason is not None:
            body["reason"] = reason
        result: dict[str, Any] = self._call("POST", f"refunds/{refund_id}/settle", json=body)
        return result

    def dashboard_refund(self, capture_id: str, amount: str) -> dict[str, Any]:
        """Refund by hand in PayPal's dashboard (nothing of ours on it); the refund resource."""
        result: dict[str, Any] = self._call(
            "POST", f"captures/{capture_id}/dashboard_refund", json={"amount": amount}
        )
        return result

    def reverse_capture(self, capture_id: str, amount: str | None = None) -> dict[str, Any]:
        """PayPal takes the money back (PAYMENT.CAPTURE.REVERSED); the reversal resource."""
        result: dict[str, Any] = self._call(
            "POST", f"captures/{capture_id}/reverse", json={} if amount is None else {"amount": amount}
        )
        return result

    def open_dispute(self, capture_id: str, reason: str = "MERCHANDISE_OR_SERVICE_NOT_RECEIVED") -> str:
        """Send CUSTOMER.DISPUTE.CREATED for the capture; the dispute id."""
        return str(
            self._call("POST", f"captures/{capture_id}/dispute", json={"reason": reason})["dispute_id"]
        )

    def events(self) -> list[dict[str, Any]]:
        """Webhook events with their payload, delivery state and attempts."""
        return list(self._call("GET", "events")["events"])

    def deliveries(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "events")["deliveries"])

    def set_webhook_url(self, url: str | None) -> None:
        self._call("POST", "config", json={"webhook_url": url})

    def config(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "config")
        return result

    def sign(
        self,
        body: str,
        webhook_id: str | None = None,
        sent_at: str | None = None,
        certificate: str | None = None,
    ) -> dict[str, str]:
        """The transmission headers PayPal would send with `body` (now, or at ISO time `sent_at`);
        `certificate` signs with one PayPal never would (`sandbox.paypal.certificates.VARIANTS`)."""
        payload: dict[str, Any] = {"body": body}
        if webhook_id is not None:
            payload["webhook_id"] = webhook_id
        if sent_at is not None:
            payload["sent_at"] = sent_at
        if certificate is not None:
            payload["certificate"] = certificate
        return dict(self._call("POST", "sign", json=payload)["headers"])

    def cert_pem(self) -> bytes:
        """The signing certificate, then the sandbox CA's, as PayPal serves its chain."""
        response = self._http.get("/_sandbox/paypal/cert.pem")
        response.raise_for_status()
        return response.content

    def reset(self) -> None:
        self._call("POST", "reset")
