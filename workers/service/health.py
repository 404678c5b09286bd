"""Liveness and metrics."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from temporalio.service import RPCError

from adapters.db import outbound_events, refunds
from adapters.db.engine import bound_statements
from adapters.db.outbound_events import EndpointHealth
from domain.warning_savings import Savings, savings
from workers.ops import PENDING_QUERY
from workers.service.deps import Services, ServicesDep
from workers.service.metrics import (
    CHARGEBACK_FEES_AVOIDED,
    EVENT_ENDPOINT_ENABLED,
    EVENTS_OLDEST_OWED,
    EVENTS_OWED,
    REFUNDED_ON_WARNINGS,
    REGISTRY,
    REVIEW_QUEUE_DEPTH,
)

router = APIRouter(tags=["operations"])

# the database's part of a scrape: a refunds table locked (a migration) or slow keeps the last figures
# and the scrape answers, well within Prometheus' 10 s scrape timeout, with everything else
SAVINGS_READ_MS = 2_000


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(services: ServicesDep) -> Response:
    """Product metrics; the review queue's depth is counted in Temporal's visibility and what
    refunds on early fraud warnings saved is read from the database, at each scrape."""
    try:
        waiting = await services.temporal.count_workflows(PENDING_QUERY)
    except RPCError:
        pass  # Temporal unreachable: the last known depth stays
    else:
        REVIEW_QUEUE_DEPTH.set(waiting.count)
    try:
        saved = await run_in_threadpool(_warning_savings, services)
    except SQLAlchemyError:
        pass  # the database unreachable: the last known figures stay
    else:
        for line in saved:
            REFUNDED_ON_WARNINGS.labels(merchant=line.merchant_id, currency=line.currency).set(line.refunded)
            if line.saved is not None:
                CHARGEBACK_FEES_AVOIDED.labels(merchant=line.merchant_id, currency=line.currency).set(
                    line.saved
                )
    try:
        endpoints = await run_in_threadpool(_endpoint_health, services)
    except SQLAlchemyError:
        pass
    else:
        _show_endpoints(services, endpoints)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


def _endpoint_health(services: Services) -> list[EndpointHealth]:
    with services.db.transaction() as session:
        bound_statements(session, SAVINGS_READ_MS)
        return outbound_events.endpoint_health(session)


def _show_endpoints(services: Services, endpoints: list[EndpointHealth]) -> None:
    """Each endpoint's figures as they are now (one removed since is no longer reported)."""
    now = datetime.now(UTC)
    for gauge in (EVENTS_OWED, EVENTS_OLDEST_OWED, EVENT_ENDPOINT_ENABLED):
        gauge.clear()
    for health in endpoints:
        labels = {
            "endpoint": health.endpoint_id,
            "merchant": health.merchant or services.settings.merchant_id,
        }
        EVENTS_OWED.labels(**labels).set(health.owed)
        EVENT_ENDPOINT_ENABLED.labels(**labels).set(1 if health.enabled else 0)
        oldest = (now - health.oldest_owed_at).total_seconds() if health.oldest_owed_at else 0
        EVENTS_OLDEST_OWED.labels(**labels).set(int(oldest))


def _warning_savings(services: Services) -> list[Savings]:
    with services.db.transaction() as session:
        bound_statements(session, SAVINGS_READ_MS)
        made = refunds.warning_refunds(session, services.settings.merchant_id)
    fees = {
        merchant: policy.early_fraud_warnings.chargeback_fees
        for merchant, policy in services.policies.items()
    }
    return savings(made, fees)
