"""The baseline: a workflow of five trivial activities, in an importable module for the sandbox."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow


@activity.defn(name="bench_step")
def bench_step(n: int) -> int:
    return n + 1


@workflow.defn(name="BareFiveActivities")
class BareFiveActivities:
    @workflow.run
    async def run(self, n: int) -> int:
        for _ in range(5):
            n = await workflow.execute_activity(
                "bench_step", n, start_to_close_timeout=timedelta(seconds=30), result_type=int
            )
        return n
