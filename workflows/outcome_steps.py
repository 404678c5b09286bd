"""The steps the two standalone PSP-outcome workflows share (a late failure of our refund, a
dashboard refund): prove and read back the PSP's word, then reverse a posting. Each is called the
same way from both, so it is written once here."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from domain.contracts import LateFailureInput, OutcomeCheck, OutcomeVerdict
    from domain.naming import Activity

DB_TIMEOUT = timedelta(seconds=30)
DB_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30))
_PSP_TIMEOUT = timedelta(seconds=60)
_PSP_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=5))


async def confirm_outcome(check: OutcomeCheck) -> OutcomeVerdict:
    """The service's proof checked against the keys it published, then the PSP's own word."""
    verdict: OutcomeVerdict = await workflow.execute_activity(
        Activity.CONFIRM_OUTCOME,
        check,
        result_type=OutcomeVerdict,
        start_to_close_timeout=_PSP_TIMEOUT,
        retry_policy=_PSP_RETRY,
    )
    return verdict


async def reverse(late: LateFailureInput) -> bool:
    """Reverse a succeeded refund's posting once; False when there was nothing to reverse."""
    reversed_: bool = await workflow.execute_activity(
        Activity.REVERSE,
        late,
        result_type=bool,
        start_to_close_timeout=DB_TIMEOUT,
        retry_policy=DB_RETRY,
    )
    return reversed_
