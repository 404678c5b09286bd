"""A local PSP sandbox speaking the PSPs' real HTTP APIs, for `refunds dev`, tests and benchmarks.

`SandboxServer` serves Stripe's `/v1/` API (idempotency keys, signed webhooks, injected faults) and a
control API under `/_sandbox/` (`SandboxControl` is its client). State lives in SQLite.
"""

from adapters.sandbox.control import SandboxControl
from adapters.sandbox.demo import seed_demo_payments
from adapters.sandbox.kinds import FaultKind, RefundBehavior
from adapters.sandbox.server import SandboxServer

__all__ = ["FaultKind", "RefundBehavior", "SandboxControl", "SandboxServer", "seed_demo_payments"]
