"""A local PSP sandbox speaking the PSPs' real HTTP APIs, for `refunds dev`, tests and benchmarks.

`SandboxServer` serves Stripe's `/v1/` API (idempotency keys, signed webhooks, injected faults) and a
control API under `/_sandbox/` (`SandboxControl` is its client); `mount_adyen` and `mount_paypal`
add Adyen and PayPal beside it. State lives in SQLite.

A development and test tool, not product: installed for development, never copied into the image,
and product code may not import it (`lint-imports`); only `workers.sandbox` (`refunds sandbox`) runs it.

Layout: one package per PSP with the same module for the same role (`api`: its HTTP API and its
control routes; `engine`: its state and rules; `control`: the typed client of its control API), and
what they share: `server` (the HTTP server), `routing`, `store` (SQLite), `faults`, `webhooks` (one
sender for every PSP's outbox), `control` (control-API plumbing), `background`, `stats`.
"""

from sandbox.faults import FaultKind
from sandbox.server import SandboxServer
from sandbox.stripe.control import SandboxControl
from sandbox.stripe.demo import seed_demo_payments
from sandbox.stripe.engine import RefundBehavior

__all__ = ["FaultKind", "RefundBehavior", "SandboxControl", "SandboxServer", "seed_demo_payments"]
