"""POST /v1/refund-requests: authenticate, validate, admit once, start one workflow."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from adapters.db import intake
from adapters.db.intake import Admission
from domain import signature
from domain.contracts import RefundWorkflowInput, SignatureEvidence
from domain.naming import SA_PAYMENT, SA_PROVIDER, SA_STATUS, workflow_id
from domain.requests import RefundRequest
from domain.status import ErrorCode, RefundStatus
from workers.service.deps import Services, ServicesDep
from workers.service.errors import ApiError
from workers.service.metrics import ACK_SECONDS, REFUND_REQUESTS
from workers.service.reads import current_state
from workflows.refund import RefundWorkflow

router = APIRouter(prefix="/v1/refund-requests", tags=["refund requests"])


class Accepted(BaseModel):
    request_id: str
    workflow_id: str
    status: RefundStatus


_SIGNATURE_DOC = '`t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`; several `v1=` during rotation'


@router.post(
    "",
    status_code=202,
    response_model=Accepted,
    responses={
        200: {"description": "The same request again: the existing workflow, nothing new started"},
        401: {"description": "Missing, invalid or expired signature"},
        409: {"description": "The request_id was used before with another body"},
        422: {"description": "Malformed body"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": RefundRequest.model_json_schema()}},
        }
    },
)
async def create_refund_request(
    request: Request,
    response: Response,
    services: ServicesDep,
    refund_signature: Annotated[str | None, Header(description=_SIGNATURE_DOC)] = None,
) -> Accepted:
    started = time.perf_counter()
    try:
        accepted = await _admit(request, response, services, refund_signature)
    except ApiError as err:
        REFUND_REQUESTS.labels(outcome=err.code).inc()
        raise
    REFUND_REQUESTS.labels(outcome="replayed" if response.status_code == 200 else "accepted").inc()
    ACK_SECONDS.observe(time.perf_counter() - started)
    return accepted


async def _admit(request: Request, response: Response, services: Services, header: str | None) -> Accepted:
    raw = await request.body()
    _verify(raw, header, services.settings.inbound_secrets)
    refund = _parse(raw)
    wf_id = workflow_id(refund.request_id)
    decision = await run_in_threadpool(
        intake.admit, services.db, refund.request_id, signature.body_digest(raw), wf_id
    )
    if decision.admission is Admission.CONFLICT:
        raise ApiError(409, ErrorCode.REQUEST_CONFLICT, "request_id was already used with a different body")
    replay = decision.admission is Admission.REPLAY
    if replay:
        response.status_code = 200
    if not decision.workflow_started:
        evidence = SignatureEvidence(
            raw_body=raw.decode(), signature_header=header or "", received_at=datetime.now(UTC)
        )
        await _start(services, refund, evidence)
        await run_in_threadpool(intake.mark_started, services.db, refund.request_id)
    status = await _status(services, wf_id) if replay else RefundStatus.RECEIVED
    return Accepted(request_id=refund.request_id, workflow_id=wf_id, status=status)


def _verify(raw: bytes, header: str | None, secrets: list[str]) -> None:
    try:
        signature.verify(header, raw, secrets, int(time.time()))
    except signature.SignatureError as err:
        raise ApiError(401, err.code, err.message) from err


def _parse(raw: bytes) -> RefundRequest:
    try:
        payload: Any = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ApiError(400, ErrorCode.INVALID_JSON, f"body is not JSON: {err}") from err
    try:
        return RefundRequest.model_validate(payload)
    except ValidationError as err:
        details = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in err.errors()]
        raise ApiError(422, ErrorCode.INVALID_REQUEST, "request is invalid", details) from err


async def _start(services: Services, refund: RefundRequest, evidence: SignatureEvidence) -> None:
    settings = services.settings
    try:
        await services.temporal.start_workflow(
            RefundWorkflow.run,
            RefundWorkflowInput(request=refund, evidence=evidence, policy=settings.policy()),
            id=workflow_id(refund.request_id),
            task_queue=settings.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=_initial_attributes(refund),
        )
    except WorkflowAlreadyStartedError:
        return  # closed already: the same refund, never a second one
    except RPCError as err:
        raise ApiError(
            503, ErrorCode.TEMPORAL_UNAVAILABLE, "could not start the refund; retry the request"
        ) from err


def _initial_attributes(refund: RefundRequest) -> TypedSearchAttributes:
    return TypedSearchAttributes(
        [
            SearchAttributePair(SA_STATUS, RefundStatus.RECEIVED.value),
            SearchAttributePair(SA_PROVIDER, refund.provider.value),
            SearchAttributePair(SA_PAYMENT, refund.payment_reference),
        ]
    )


async def _status(services: Services, wf_id: str) -> RefundStatus:
    state = await current_state(services, wf_id)
    return state.status if state is not None else RefundStatus.RECEIVED
