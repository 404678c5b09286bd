"""What a refund is, from the workflow's state and the database's lasting record of it."""

from __future__ import annotations

from domain.contracts import RefundState
from domain.status import RefundStatus


def as_recorded(live: RefundState, settled: RefundState | None) -> RefundState:
    """The workflow's state, unless the lasting record says the PSP failed the refund after the
    workflow saw it succeed: the late failure was reversed in the books, so the refund is failed."""
    if settled is None or settled.status is not RefundStatus.FAILED:
        return live
    if live.status is not RefundStatus.SUCCEEDED:
        return live
    return live.model_copy(update={"status": RefundStatus.FAILED, "failure_code": settled.failure_code})
