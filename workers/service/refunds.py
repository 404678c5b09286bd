"""GET /v1/refunds/{id}; approve and reject by an authenticated reviewer, a merchant's own reviewers
for that merchant's refunds only."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError
from temporalio.exceptions import TemporalError

from adapters.db.audit import AuditEntry
from domain import identity
from domain.clients import requested_by
from domain.contracts import RefundState, ReviewInput
from domain.naming import workflow_id
from domain.status import ErrorCode
from workers.service.deps import ClientReader, ReaderDep, Reviewer, ReviewerDep, Services, ServicesDep
from workers.service.errors import ApiError, error_responses
from workers.service.reads import audit_trail, current_state, refund_to_act_on, state_for
from workers.service.scope import EVERY_MERCHANT
from workers.service.updates import run_update
from workflows.refund import RefundWorkflow

router = APIRouter(prefix="/v1/refunds", tags=["refunds"], responses=error_responses(401, 404, 422, 503))


class RefundView(RefundState):
    workflow_id: str
    audit: list[AuditEntry] = Field(default_factory=list)


class ReviewBody(BaseModel):
    reason: str = Field(default="", max_length=1000)


@router.get("/{request_id}", response_model=RefundView)
async def get_refund(request_id: str, reader: ReaderDep, services: ServicesDep) -> RefundView:
    state = await state_for(services, request_id, reader.scope if reader else EVERY_MERCHANT)
    if isinstance(reader, ClientReader):  # its own refunds alone, without the trail of who decided
        if state.requested_by != requested_by(reader.name):
            raise ApiError(404, ErrorCode.NOT_FOUND, f"no refund {request_id}")
        # nor who decided in the view itself (the reviewers, their reasons), nor the merchant's risk
        # rules and the model's inputs: the client knows its own limits from its 202 (`held_for`)
        unseen = state.model_copy(update={"risk": None, "review": None, "approvals": []})
        return RefundView(**unseen.model_dump(), workflow_id=workflow_id(state.request_id))
    trail = await audit_trail(services, state.request_id)
    return RefundView(**state.model_dump(), workflow_id=workflow_id(state.request_id), audit=trail)


@router.post("/{request_id}/approve", response_model=RefundState, responses=error_responses(400, 409, 413))
async def approve(
    request_id: str, reviewer: ReviewerDep, services: ServicesDep, body: ReviewBody | None = None
) -> RefundState:
    refund = await refund_to_act_on(services, request_id, reviewer.scope)  # a merchant's: its own
    review = _signed(services, refund, "approve", reviewer, body.reason if body else "")
    return await _after(services, refund, await run_update(services, refund, RefundWorkflow.approve, review))


@router.post("/{request_id}/reject", response_model=RefundState, responses=error_responses(400, 409, 413))
async def reject(
    request_id: str, body: ReviewBody, reviewer: ReviewerDep, services: ServicesDep
) -> RefundState:
    refund = await refund_to_act_on(services, request_id, reviewer.scope)
    review = _signed(services, refund, "reject", reviewer, body.reason)
    return await _after(services, refund, await run_update(services, refund, RefundWorkflow.reject, review))


async def _after(services: Services, refund: str, decided: RefundState) -> RefundState:
    """The refund as the decision left it: the workflow acts on a decision in the task that took it,
    so asking again shows where it went (rejected, refunding), not the review it was in."""
    try:
        return await current_state(services, workflow_id(refund)) or decided
    except (ApiError, TemporalError, SQLAlchemyError):
        # could not ask again (Temporal, the query, the database): the decision is taken, and what
        # it answered is still true; a 500 would have the reviewer decide twice
        return decided


def _signed(services: Services, refund: str, verdict: str, reviewer: Reviewer, reason: str) -> ReviewInput:
    """The decision of the reviewer the token proved, signed for this refund's workflow alone."""
    proof = identity.sign_with_each(
        services.decision_keys, workflow_id(refund), verdict, reviewer.name, reason
    )
    return ReviewInput(reviewer=reviewer.name, reason=reason, proof=proof)
