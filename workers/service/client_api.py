"""GET /v1/client and /v1/client/refunds: an API client reads its own standing, nothing else.

What a client (or the AI assistant acting as one) needs to behave: its reasons and limits, what is
left of each daily budget, and the refunds it asked for lately with where each stands. The list
comes from Temporal's visibility (`RefundRequestedBy`), which trails a refund's progress by a moment.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from temporalio.client import WorkflowExecution
from temporalio.service import RPCError

from adapters.db import clients
from domain.clients import BUDGET_WINDOW, BudgetStanding, requested_by
from domain.clients import Client as ApiClient
from domain.money import Money
from domain.naming import (
    SA_AMOUNT,
    SA_CURRENCY,
    SA_MERCHANT,
    SA_REQUESTED_BY,
    SA_STATUS,
    merchants_request_id,
    request_id_from_workflow_id,
)
from domain.status import ErrorCode
from workers.service.deps import ApiClientDep, Services, ServicesDep
from workers.service.errors import ApiError, error_responses, temporal_unavailable

router = APIRouter(prefix="/v1/client", tags=["api clients"], responses=error_responses(401, 503))

MOST_LISTED = 100


class Budget(BaseModel):
    """One currency's limits; a refund in a currency without one waits for a human."""

    max_per_refund: Money = Field(description="Above it a refund waits for a human")
    daily: Money
    reserved: Money = Field(description="Reserved by refunds of the last 24 hours still going or done")
    left: Money = Field(description="What refunds may still use without a human deciding")


class ClientStanding(BaseModel):
    name: str
    merchant_id: str
    reasons: list[str]
    window_hours: int
    budgets: list[Budget]


class ClientRefund(BaseModel):
    request_id: str = Field(description="As the client sent it")
    status: str = Field(description="As last published: trails the refund by a moment")
    amount: Money | None = None
    started_at: datetime


class ClientRefunds(BaseModel):
    refunds: list[ClientRefund] = Field(description="Newest first")


@router.get("", response_model=ClientStanding)
async def standing(client: ApiClientDep, services: ServicesDep) -> ClientStanding:
    budgets = await run_in_threadpool(_standing, services, client)
    return ClientStanding(
        name=client.name,
        merchant_id=client.merchant_id,
        reasons=list(client.reasons),
        window_hours=int(BUDGET_WINDOW.total_seconds() // 3600),
        budgets=[
            Budget(
                # every budget row keeps its maximum (adapters/db/clients.py): the 0 is never shown
                max_per_refund=client.maximum(b.budget.currency)
                or Money(value=0, currency=b.budget.currency),
                daily=b.budget,
                reserved=Money(value=b.reserved, currency=b.budget.currency),
                left=b.left,
            )
            for b in budgets
        ],
    )


@router.get("/refunds", response_model=ClientRefunds)
async def recent_refunds(
    client: ApiClientDep,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=MOST_LISTED)] = 20,
) -> ClientRefunds:
    # names match domain.clients.NAME_PATTERN and merchant ids theirs: nothing to escape in the query
    query = (
        f'{SA_REQUESTED_BY.name} = "{requested_by(client.name)}" '
        f'AND {SA_MERCHANT.name} = "{client.merchant_id}"'
    )
    # Visibility lists running workflows first, then closed ones by close time, and takes no ORDER
    # BY: the newest `limit` of each, merged by start, so old refunds still open (in review) never
    # push out newer ones that finished.
    listed: list[ClientRefund] = []
    try:
        for running_or_not in ("=", "!="):
            scoped = f'{query} AND ExecutionStatus {running_or_not} "Running"'
            listed += [
                _listed(execution)
                async for execution in services.temporal.list_workflows(scoped, limit=limit)
            ]
    except RPCError as err:
        raise temporal_unavailable(err, "listing this client's refunds") from err
    listed.sort(key=lambda refund: refund.started_at, reverse=True)
    return ClientRefunds(refunds=listed[:limit])


def _listed(execution: WorkflowExecution) -> ClientRefund:
    attributes = execution.typed_search_attributes
    amount, currency = attributes.get(SA_AMOUNT), attributes.get(SA_CURRENCY)
    known = amount is not None and bool(currency)  # set once validation fixed the amount
    return ClientRefund(
        request_id=merchants_request_id(request_id_from_workflow_id(execution.id)),
        status=attributes.get(SA_STATUS) or "received",
        amount=Money(value=amount, currency=currency) if known else None,
        started_at=execution.start_time.astimezone(UTC),
    )


def _standing(services: Services, client: ApiClient) -> list[BudgetStanding]:
    try:
        with services.db.transaction() as session:
            return clients.standing(session, client, datetime.now(UTC))
    except SQLAlchemyError as err:
        raise ApiError(
            503, ErrorCode.DATABASE_UNAVAILABLE, "the client's budget cannot be read right now; retry"
        ) from err
