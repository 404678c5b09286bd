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


async def _serve(address: str, task_queue: str, threads: int) -> None:
    import compileall
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path

    from temporalio.client import Client
    from temporalio.worker import Worker

    from workers.settings import Settings
    from workers.shutdown import shutdown_event
    from workers.worker import workflow_runner

    compileall.compile_dir(Path(__file__).parent, quiet=2)  # same treatment as the refund worker
    client = await Client.connect(address)
    stop = shutdown_event()
    with ThreadPoolExecutor(max_workers=threads) as executor:
        async with Worker(
            client,
            task_queue=task_queue,
            workflows=[BareFiveActivities],
            activities=[bench_step],
            activity_executor=executor,
            max_concurrent_activities=threads,
            workflow_runner=workflow_runner(Settings()),  # the same runner as the refund worker
        ):
            await stop.wait()


if __name__ == "__main__":
    import asyncio
    import sys

    asyncio.run(_serve(sys.argv[1], sys.argv[2], int(sys.argv[3])))
