"""A typed client for the Adyen sandbox's control API (`/_sandbox/adyen/`), for tests and demos."""

from __future__ import annotations

from typing import Any, Literal

from sandbox.control import ControlClient


class AdyenSandboxControl(ControlClient):
    PREFIX = "/_sandbox/adyen"
    FAULT_PATHS = "/checkout/"

    def seed_payment(
        self,
        *,
        amount: int,
        currency: str,
        captured: bool = True,
        psp_reference: str | None = None,
        merchant_reference: str | None = None,
    ) -> str:
        """An authorised (and captured) payment, amount in Adyen's minor units; returns its pspReference.

        Its AUTHORISATION (and CAPTURE) notifications go to the webhook URL.
        """
        body: dict[str, Any] = {"amount": amount, "currency": currency, "captured": captured}
        if psp_reference is not None:
            body["psp_reference"] = psp_reference
        if merchant_reference is not None:
            body["merchant_reference"] = merchant_reference
        return str(self._call("POST", "/payments", json=body)["pspReference"])

    def settlement_report(self, merchant_account: str | None = None) -> str:
        """The Settlement details report (CSV, Adyen's published columns) of what was settled."""
        query = f"?merchant_account={merchant_account}" if merchant_account else ""
        return str(self._call("GET", f"/settlement-report{query}")["csv"])

    def modifications(self, psp_reference: str) -> list[dict[str, Any]]:
        """Every refund/cancel/reversal made on a payment, oldest first, with its idempotency key."""
        return list(self._call("GET", f"/payments/{psp_reference}/modifications")["data"])

    def dashboard_refund(self, psp_reference: str, amount: int) -> str:
        """Refund by hand in the Customer Area (the payment's reference on it); the refund's pspReference."""
        return str(
            self._call("POST", f"/payments/{psp_reference}/dashboard_refund", json={"amount": amount})[
                "pspReference"
            ]
        )

    def chargeback(self, psp_reference: str) -> None:
        """Send NOTIFICATION_OF_CHARGEBACK for a payment."""
        self._call("POST", f"/payments/{psp_reference}/chargeback")

    def fraud_notification(self, psp_reference: str, reason: str = "Card reported stolen") -> str:
        """Send NOTIFICATION_OF_FRAUD (an early fraud warning) for a payment; the notification's own
        pspReference (the payment's is its originalReference)."""
        return str(
            self._call("POST", f"/payments/{psp_reference}/fraud", json={"reason": reason})["pspReference"]
        )

    def fail_refund_late(
        self, refund_psp_reference: str, reason: str = "Refund failed at the issuer"
    ) -> None:
        """Send REFUND_FAILED for a refund whose REFUND notification said success."""
        self._call("POST", f"/modifications/{refund_psp_reference}/refund_failed", json={"reason": reason})

    def reverse_refund_late(
        self, refund_psp_reference: str, reason: str = "Refunded amount returned by the issuer"
    ) -> None:
        """Send REFUNDED_REVERSED for a refund whose REFUND notification said success: its money came
        back to the merchant, the customer was not paid."""
        self._call(
            "POST", f"/modifications/{refund_psp_reference}/refunded_reversed", json={"reason": reason}
        )

    def notifications(self, psp_reference: str | None = None) -> list[dict[str, Any]]:
        """Notifications (payload, state, attempts), oldest first; optionally those naming a reference."""
        params = {"psp_reference": psp_reference} if psp_reference else None
        return list(self._call("GET", "/notifications", params=params)["data"])

    def hold_notifications(self, held: bool = True) -> None:
        """Keep new notifications back until `release_notifications` (or `held=False` for new ones)."""
        self._call("POST", "/notifications/hold", json={"held": held})

    def release_notifications(self, order: Literal["fifo", "reverse"] = "fifo") -> int:
        """Deliver held notifications, oldest first or newest first (out of order); returns how many."""
        return int(self._call("POST", "/notifications/release", json={"order": order})["released"])

    def set_webhook_url(self, url: str | None) -> None:
        self._call("POST", "/config", json={"webhook_url": url})

    def config(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/config")
        return result

    def reset(self) -> None:
        self._call("POST", "/reset")
