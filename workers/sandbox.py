"""`refunds sandbox`: the PSP sandboxes as a process of their own, state under the data dir."""

from __future__ import annotations

from pathlib import Path

from sandbox.adyen.api import mount_adyen
from sandbox.paypal.api import mount_paypal
from sandbox.server import SandboxServer
from sandbox.stripe.demo import seed_demo_payments
from workers.psp_wiring.adyen import (
    SANDBOX_ADYEN_API_KEY,
    SANDBOX_ADYEN_HMAC_KEY,
    SANDBOX_ADYEN_MERCHANT_ACCOUNT,
)
from workers.psp_wiring.paypal import (
    SANDBOX_PAYPAL_CLIENT_ID,
    SANDBOX_PAYPAL_CLIENT_SECRET,
    SANDBOX_PAYPAL_WEBHOOK_ID,
)
from workers.psp_wiring.stripe import SANDBOX_STRIPE_API_KEY, SANDBOX_STRIPE_WEBHOOK_SECRET
from workers.settings import Settings


def sandbox_server(port: int, state_path: Path, service_url: str | None) -> SandboxServer:
    """Stripe on `/v1/`, Adyen Checkout on `/checkout/`, PayPal on `/v1/oauth2` and `/v2/`, with the
    sandbox credentials; signed events go to `<service>/webhooks/<psp>` (none: nowhere)."""

    def webhooks(psp: str) -> str | None:
        return f"{service_url}/webhooks/{psp}" if service_url else None

    server = SandboxServer(
        host="127.0.0.1",
        port=port,
        state_path=state_path,
        stripe_api_key=SANDBOX_STRIPE_API_KEY,
        stripe_webhook_secret=SANDBOX_STRIPE_WEBHOOK_SECRET,
        stripe_webhook_url=webhooks("stripe"),
    )
    mount_adyen(
        server,
        api_key=SANDBOX_ADYEN_API_KEY,
        merchant_account=SANDBOX_ADYEN_MERCHANT_ACCOUNT,
        hmac_key_hex=SANDBOX_ADYEN_HMAC_KEY,
        webhook_url=webhooks("adyen"),
    )
    mount_paypal(
        server,
        client_id=SANDBOX_PAYPAL_CLIENT_ID,
        client_secret=SANDBOX_PAYPAL_CLIENT_SECRET,
        webhook_id=SANDBOX_PAYPAL_WEBHOOK_ID,
        webhook_url=webhooks("paypal"),
    )
    return server


def run_sandbox(settings: Settings, port: int, service_url: str | None) -> None:
    """`refunds sandbox`: state under the data dir, a few demo payments, until stopped."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    server = sandbox_server(port, settings.data_dir / "sandbox.db", service_url)
    seed_demo_payments(server)
    print(f"PSP sandbox on http://127.0.0.1:{port}", flush=True)
    server.serve_forever()
