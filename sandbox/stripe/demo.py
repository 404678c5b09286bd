"""Deterministic demo payments that `refunds dev` seeds at first start (skipped when present)."""

from __future__ import annotations

from sandbox.server import SandboxServer
from sandbox.store import SandboxStore
from sandbox.stripe.engine import PaymentSeed, StripeEngine

DEMO_PAYMENTS: tuple[PaymentSeed, ...] = (
    PaymentSeed(id="pi_demo_eur_captured", amount=15_000, currency="EUR"),
    PaymentSeed(id="pi_demo_eur_large", amount=250_000, currency="EUR"),
    PaymentSeed(id="pi_demo_eur_authorized", amount=8_000, currency="EUR", captured=False),
    PaymentSeed(id="pi_demo_jpy", amount=12_000, currency="JPY"),
    PaymentSeed(
        id="pi_demo_pending",
        amount=4_000,
        currency="EUR",
        refund_behavior="pending_then_succeeded",
        settle_after_ms=5_000,
    ),
)


def seed_demo_payments(target: SandboxServer | SandboxStore) -> list[str]:
    """Create the demo payments that do not exist yet; return the ids of those created."""
    engine = target.stripe if isinstance(target, SandboxServer) else StripeEngine(target)
    created: list[str] = []
    for seed in DEMO_PAYMENTS:
        intent, is_new = engine.seed_payment(seed)
        if is_new:
            created.append(str(intent["id"]))
    return created
