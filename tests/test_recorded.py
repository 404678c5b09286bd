"""One rule, used by the API and the CLI alike: a refund the PSP failed after it succeeded is failed,
whatever the workflow that saw it succeed still says."""

from __future__ import annotations

from domain.contracts import RefundState
from domain.recorded import as_recorded
from domain.status import ErrorCode, Provider, RefundStatus


def _state(status: RefundStatus, failure: ErrorCode | None = None) -> RefundState:
    return RefundState(
        request_id="r-1",
        provider=Provider.STRIPE,
        payment_reference="pi_1",
        order_id="o-1",
        status=status,
        failure_code=failure,
    )


def test_a_failure_after_success_wins_over_the_workflows_word() -> None:
    live = _state(RefundStatus.SUCCEEDED)
    shown = as_recorded(live, _state(RefundStatus.FAILED, ErrorCode.PSP_DECLINED))
    assert (shown.status, shown.failure_code) == (RefundStatus.FAILED, ErrorCode.PSP_DECLINED)


def test_otherwise_the_workflow_says_what_the_refund_is() -> None:
    for live, settled in [
        (_state(RefundStatus.SUCCEEDED), None),
        (_state(RefundStatus.SUCCEEDED), _state(RefundStatus.SUCCEEDED)),
        (_state(RefundStatus.NEEDS_ATTENTION), _state(RefundStatus.FAILED, ErrorCode.PSP_DECLINED)),
        (_state(RefundStatus.REJECTED), _state(RefundStatus.REJECTED)),
    ]:
        assert as_recorded(live, settled) == live
