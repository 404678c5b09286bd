"""What `refunds serve` says at its start about a rotation of the review-signing key.

A refund keeps the public review keys it started with (`RefundWorkflowInput.review_keys`) and takes a
decision only with a proof made by one of them. A service whose REFUNDS_REVIEW_SIGNING_KEY no longer
holds the secret a waiting refund started under can sign nothing that refund accepts: no approval or
rejection reaches it, and it waits until its review deadline decides by policy. The keys the service
published before (`service_keys`) tell whether anything was dropped; only then are the refunds awaiting
review read (their start input, from Temporal) to name those stranded. The start goes on: the service
serves every other refund, and putting the old secret back after the new one (docs/ops.md, "Rotating
the review-signing key") frees them.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from temporalio.service import RPCError

from adapters.db import service_keys
from domain.contracts import RefundWorkflowInput
from domain.naming import request_id_from_workflow_id
from workers.ops import PENDING_QUERY

if TYPE_CHECKING:
    from temporalio.client import Client

    from adapters.db.engine import Database

MAX_SCANNED = 500  # refunds awaiting review read at a start, at most
SHOWN = 5
CHECK_SECONDS = 20.0
SETTING = "REFUNDS_REVIEW_SIGNING_KEY"
PROCEDURE = 'docs/ops.md, "Rotating the review-signing key"'


async def stranded_reviews(client: Client, current: tuple[str, ...], limit: int = MAX_SCANNED) -> list[str]:
    """The refunds awaiting review whose start input holds review keys, none of them in `current`
    (refunds started before decisions were signed hold none and keep the rule they started under)."""
    stranded: list[str] = []
    scanned = 0
    async for execution in client.list_workflows(PENDING_QUERY, limit=limit):
        scanned += 1
        handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
        async for event in handle.fetch_history_events(page_size=1):
            payloads = event.workflow_execution_started_event_attributes.input.payloads
            [started] = await client.data_converter.decode(payloads, [RefundWorkflowInput])
            break
        else:
            continue
        if started.review_keys and not set(started.review_keys) & set(current):
            stranded.append(request_id_from_workflow_id(execution.id))
        if scanned >= limit:
            break
    return stranded


async def rotation_warnings(db: Database, client: Client, current: tuple[str, ...]) -> list[str]:
    """One line for refunds a dropped review-signing key strands, or for a check that could not run."""

    def published() -> tuple[str, ...]:
        with db.transaction() as session:
            return service_keys.known(session)

    dropped = set(await run_in_threadpool(published)) - set(current)
    if not dropped:
        return []
    try:
        stranded = await asyncio.wait_for(stranded_reviews(client, current), CHECK_SECONDS)
    except (RPCError, TimeoutError) as err:
        why = err.message if isinstance(err, RPCError) else f"no answer within {CHECK_SECONDS:g} s"
        return [
            f"{SETTING} no longer holds {len(dropped)} review-signing key(s) this service published "
            f"before, and the refunds awaiting review could not be checked ({why}): one started under "
            f"a dropped key takes no decision until its deadline ({PROCEDURE})"
        ]
    if not stranded:
        return []
    shown = ", ".join(stranded[:SHOWN]) + (", ..." if len(stranded) > SHOWN else "")
    return [
        f"{len(stranded)} refund(s) awaiting review ({shown}) know only review-signing keys {SETTING} "
        f"no longer holds: no approval or rejection reaches them before their review deadline; put the "
        f"old secret back after the new one ({SETTING}=new,old) until they are decided ({PROCEDURE})"
    ]
