"""POST /webhooks/{provider}: verify the PSP's way, then signal the refund's workflow."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool
from temporalio.service import RPCError, RPCStatusCode

from adapters.db import holds
from adapters.db.payment_book import DatabasePaymentBook
from adapters.psp.base import PspError, PspEvent, WebhookRejected
from domain.naming import workflow_id
from domain.status import ErrorCode, Provider
from workers.service.deps import Services, ServicesDep
from workers.service.errors import ApiError
from workers.service.metrics import WEBHOOK_FAILURES
from workflows.refund import RefundWorkflow

router = APIRouter(prefix="/webhooks", tags=["PSP webhooks"])


async def _signal_refund(services: Services, event: PspEvent) -> int:
    """Signal the refund's workflow; 0 when the event names no refund of ours or it has ended."""
    if event.request_id is None or event.update is None:
        return 0
    handle = services.temporal.get_workflow_handle(workflow_id(event.request_id))
    try:
        await handle.signal(RefundWorkflow.psp_refund_update, event.update)
    except RPCError as err:
        if err.status is not RPCStatusCode.NOT_FOUND:
            raise ApiError(503, ErrorCode.TEMPORAL_UNAVAILABLE, err.message) from err
        return 0
    return 1


@router.post("/{provider}")
async def psp_webhook(provider: Provider, request: Request, services: ServicesDep) -> Response:
    try:
        adapter = services.psps.get(provider)
    except PspError as err:
        raise ApiError(404, ErrorCode.PROVIDER_NOT_CONFIGURED, err.message) from err
    body = await request.body()
    try:
        events = adapter.parse_webhook(body, dict(request.headers))
    except WebhookRejected as err:
        WEBHOOK_FAILURES.labels(source=provider.value, code=err.code).inc()
        raise ApiError(400, err.code, err.message) from err
    signalled = 0
    for event in events:
        match event.kind:
            case "refund_update":
                signalled += await _signal_refund(services, event)
            case "payment_update":
                if event.payment is not None:
                    await run_in_threadpool(DatabasePaymentBook(services.db).record, event.payment)
            case "dispute_opened":
                if event.payment_reference is not None:
                    reason = f"{event.raw_type} {event.detail.get('reason', '')}".strip()
                    await run_in_threadpool(
                        holds.open_hold, services.db, provider, event.payment_reference, reason
                    )
            case "ignored":
                pass  # acknowledged, so the PSP stops redelivering it
    acknowledgement, media_type = adapter.webhook_acknowledgement()
    return Response(acknowledgement, media_type=media_type, headers={"Refunds-Signalled": str(signalled)})
