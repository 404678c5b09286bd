"""The ops guide's visibility queries find what their rows say, and nothing else: a review that was
decided keeps `RefundAwaitingReviewSince` (and `RefundReviewEscalated`), so a query for refunds still
waiting must ask for their status too."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sandbox.stripe.control import SandboxControl
from tests.conftest import Stack, repo_root
from tests.flows import cli, large_refund_awaiting_review, wait_for_status
from tests.helpers import eventually

ROW = re.compile(r"^\| (?P<what>[^|]+?) \| `(?P<query>[^`]+)` \|$")


def _review_queries() -> dict[str, str]:
    """The guide's rows about reviews still waiting, their example date moved to tomorrow."""
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    rows = {}
    for line in (repo_root() / "docs" / "ops.md").read_text().splitlines():
        match = ROW.match(line)
        if match and "waiting" in match["what"]:
            rows[match["what"]] = re.sub(r'"\d{4}-\d\d-\d\dT[\d:]+Z"', f'"{tomorrow}"', match["query"])
    return rows


async def test_the_guides_waiting_queries_leave_out_a_decided_review(
    stack: Stack, sandbox: SandboxControl
) -> None:
    queries = _review_queries()
    assert "waiting for review for more than a day" in queries, queries
    request_id, _ = await large_refund_awaiting_review(stack, sandbox)
    workflow = f'WorkflowId = "refund-{request_id}"'

    async def listed(query: str) -> list[str]:
        return [e.id async for e in stack.client.list_workflows(f"{query} AND {workflow}")]

    since = queries["waiting for review for more than a day"]
    assert await eventually(lambda: listed(since), bool)  # waiting: it is found
    assert (await cli(stack, "approve", request_id, "--token", "alice-token")).returncode == 0
    await wait_for_status(stack, request_id, {"succeeded"})
    await eventually(lambda: listed('RefundStatus = "succeeded"'), bool)
    for what, query in queries.items():
        assert await listed(query) == [], what
