"""Liveness and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from temporalio.service import RPCError

from workers.ops import PENDING_QUERY
from workers.service.deps import ServicesDep
from workers.service.metrics import REGISTRY, REVIEW_QUEUE_DEPTH

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(services: ServicesDep) -> Response:
    """Product metrics; the review queue's depth is counted in Temporal's visibility at each scrape."""
    try:
        waiting = await services.temporal.count_workflows(PENDING_QUERY)
    except RPCError:
        pass  # Temporal unreachable: the last known depth stays
    else:
        REVIEW_QUEUE_DEPTH.set(waiting.count)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
