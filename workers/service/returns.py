"""POST /v1/refunds/{id}/goods-received: the warehouse reports returned goods, signed like a request."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request
from pydantic import ValidationError

from domain.json_keys import duplicate_key
from domain.requests import holds_nul
from domain.returns import GoodsReceipt, ReturnsState
from domain.status import ErrorCode
from workers.service.deps import ServicesDep
from workers.service.errors import ApiError, error_responses
from workers.service.openapi import json_body
from workers.service.reads import narrowed, state_for
from workers.service.refund_requests import verify_merchant_signature
from workers.service.updates import run_update
from workflows.refund import RefundWorkflow

router = APIRouter(prefix="/v1/refunds", tags=["returns"])


@router.post(
    "/{request_id}/goods-received",
    response_model=ReturnsState,
    responses=error_responses(
        400,
        (401, "Missing, invalid or expired signature, or an unknown merchant"),
        404,
        (409, "The refund expects no such goods, or fewer units"),
        413,
        422,
        503,
    ),
    openapi_extra=json_body(GoodsReceipt),
)
async def goods_received(
    request_id: str,
    request: Request,
    services: ServicesDep,
    refund_signature: Annotated[str | None, Header()] = None,
    refund_merchant: Annotated[
        str | None, Header(description="The merchant whose secret signed the receipt (none: the default)")
    ] = None,
) -> ReturnsState:
    """Restock the receipt's sellable units (once per `receipt_id`); 409 when the refund expects no
    such goods or more units than it is owed; 404 for another merchant's refund."""
    raw = await request.body()
    merchant_id = verify_merchant_signature(services, raw, refund_signature, refund_merchant)
    try:  # read as a refund request is (`refund_requests._parse`)
        receipt = GoodsReceipt.model_validate_json(raw)
    except ValidationError as err:
        errors = err.errors(include_url=False)
        if any(e["type"] == "json_invalid" for e in errors):
            raise ApiError(400, ErrorCode.INVALID_JSON, f"body is not JSON: {errors[0]['msg']}") from err
        raise ApiError(422, ErrorCode.INVALID_REQUEST, str(errors)[:1000]) from err
    twice = duplicate_key(raw)
    if twice is not None:
        raise ApiError(400, ErrorCode.INVALID_JSON, f"body is not JSON we take: {twice}")
    if holds_nul(receipt.model_dump()):
        raise ApiError(422, ErrorCode.INVALID_REQUEST, "text may not contain NUL (\\u0000)")
    if receipt.request_id != request_id:  # the signature covers the refund it names, and only that
        raise ApiError(
            422,
            ErrorCode.INVALID_REQUEST,
            f"the signed receipt must name this refund (request_id {request_id!r})",
        )
    refund = await state_for(services, request_id, narrowed(services, merchant_id))  # else 404
    if receipt.receipt_id in refund.returns.receipts:
        return refund.returns  # a repeat is answered, never sent to the workflow: its history stays small
    kept = receipt.model_copy(update={"request_id": refund.request_id})  # as the refund is kept
    state: ReturnsState = await run_update(services, refund.request_id, RefundWorkflow.goods_received, kept)
    return state
