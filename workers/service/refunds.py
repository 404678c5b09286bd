"""GET /v1/refunds/{id}; approve and reject by an authenticated reviewer."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from adapters.db.audit import AuditEntry
from domain.contracts import RefundState, ReviewInput
from domain.naming import workflow_id
from domain.status import ErrorCode
from workers.service.deps import ReviewerDep, ServicesDep
from workers.service.errors import ApiError
from workers.service.reads import audit_trail, current_state
from workers.service.updates import run_update
from workflows.refund import RefundWorkflow

router = APIRouter(prefix="/v1/refunds", tags=["refunds"])


class RefundView(RefundState):
    workflow_id: str
    audit: list[AuditEntry] = Field(default_factory=list)


class ReviewBody(BaseModel):
    reason: str = Field(default="", max_length=1000)


@router.get("/{request_id}", response_model=RefundView)
async def get_refund(request_id: str, services: ServicesDep) -> RefundView:
    wf_id = workflow_id(request_id)
    state = await current_state(services, wf_id)
    if state is None:
        raise ApiError(404, ErrorCode.NOT_FOUND, f"no refund {request_id}")
    trail = await audit_trail(services, request_id)
    return RefundView(
        **state.model_dump(),
        workflow_id=wf_id,
        audit=trail,
    )


@router.post("/{request_id}/approve", response_model=RefundState)
async def approve(
    request_id: str, reviewer: ReviewerDep, services: ServicesDep, body: ReviewBody | None = None
) -> RefundState:
    review = ReviewInput(reviewer=reviewer, reason=body.reason if body else "")
    state: RefundState = await run_update(services, request_id, RefundWorkflow.approve, review)
    return state


@router.post("/{request_id}/reject", response_model=RefundState)
async def reject(
    request_id: str, body: ReviewBody, reviewer: ReviewerDep, services: ServicesDep
) -> RefundState:
    review = ReviewInput(reviewer=reviewer, reason=body.reason)
    state: RefundState = await run_update(services, request_id, RefundWorkflow.reject, review)
    return state
