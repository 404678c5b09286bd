"""Names shared by the sandbox server and its control client: fault kinds and refund behaviours."""

from __future__ import annotations

from typing import Literal, get_args

FaultKind = Literal["error_500", "error_500_stored", "lose_response", "rate_limit", "slow"]
"""What an injected fault does to the next matching PSP call.

- `error_500`: answer 500 before the endpoint executes; nothing is stored under the idempotency key.
- `error_500_stored`: the endpoint "began executing" and stored a 500 under the key, without effect.
- `lose_response`: execute and commit, store the response, then close the socket without answering.
- `rate_limit`: answer 429 with `Retry-After` before executing; nothing stored.
- `slow`: sleep `delay_ms` after the key is taken, then execute (the effect commits even if the
  client went away meanwhile).
"""

RefundBehavior = Literal["succeeded", "pending_then_succeeded", "pending_then_failed", "pending"]
"""How a seeded payment's refunds behave: answered at once, or pending and settled later."""

FAULT_KINDS: frozenset[str] = frozenset(get_args(FaultKind))
REFUND_BEHAVIORS: frozenset[str] = frozenset(get_args(RefundBehavior))
