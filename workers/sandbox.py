"""`refunds sandbox`: the PSP sandbox as a process of its own, state under the data dir."""

from __future__ import annotations

from adapters.sandbox.demo import seed_demo_payments
from adapters.sandbox.server import SandboxServer
from workers.settings import SANDBOX_STRIPE_API_KEY, SANDBOX_STRIPE_WEBHOOK_SECRET, Settings


def run_sandbox(settings: Settings, port: int, webhook_url: str | None) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    server = SandboxServer(
        host="127.0.0.1",
        port=port,
        state_path=settings.data_dir / "sandbox.db",
        stripe_api_key=SANDBOX_STRIPE_API_KEY,
        stripe_webhook_secret=SANDBOX_STRIPE_WEBHOOK_SECRET,
        stripe_webhook_url=webhook_url,
    )
    seed_demo_payments(server)
    print(f"PSP sandbox on http://127.0.0.1:{port}", flush=True)
    server.serve_forever()
