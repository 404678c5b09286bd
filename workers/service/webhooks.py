"""POST /webhooks/{provider} (the default merchant's PSP accounts) and /webhooks/{provider}/{merchant}
(another merchant's own): verify the PSP's way with that account's secret, then signal the refund's
workflow."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool
from temporalio.client import WorkflowExecutionStatus
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode

from adapters.db import audit, holds, psp_events
from adapters.db.models import PspPaymentRow
from adapters.db.payment_book import DatabasePaymentBook
from adapters.psp.base import PspAdapter, PspError, PspEvent, WebhookRejected
from domain.contracts import (
    AuditEvent,
    ExternalRefundInput,
    LateFailureInput,
    PaymentRecord,
    PspRefundUpdate,
)
from domain.naming import (
    external_refund_workflow_id,
    external_request_id,
    late_failure_workflow_id,
    names_own,
    workflow_id,
)
from domain.outcome_proofs import sign_outcome, subject
from domain.status import ErrorCode, PaymentState, Provider, PspRefundStatus
from workers.psp_wiring import WIRINGS
from workers.service.deps import Services, ServicesDep
from workers.service.errors import ApiError, error_responses, temporal_unavailable
from workers.service.fraud_warnings import take_warning
from workers.service.metrics import WEBHOOK_FAILURES, WEBHOOK_REPLAYS
from workers.service.openapi import json_body
from workflows.external_refund import ExternalRefundWorkflow
from workflows.late_failure import LateRefundFailureWorkflow
from workflows.refund import RefundWorkflow

_ACKNOWLEDGED = {
    "description": "Taken (or seen before): the PSP's own acknowledgement, JSON or text as it expects; "
    "`Refunds-Signalled` tells how many workflows were told",
    "content": {"application/json": {}, "text/plain": {}},
}
router = APIRouter(
    prefix="/webhooks",
    tags=["PSP webhooks"],
    responses={
        200: _ACKNOWLEDGED,
        **error_responses(
            (400, "Not signed by the PSP account's secret, or not the PSP's event format"),
            (404, "This PSP is not configured (for this merchant)"),
            413,
            422,
            503,
        ),
    },
)
_SIGNED_BY = {name: text for wiring in WIRINGS for name, text in wiring.webhook_headers.items()}
_EVENT = {
    **json_body(
        {"type": "object", "description": "The PSP's delivery as it sends it (Adyen signs each item in it)"}
    ),
    "parameters": [
        {"name": name, "in": "header", "required": False, "schema": {"type": "string"}, "description": text}
        for name, text in _SIGNED_BY.items()
    ],
}


async def _signal_once(
    services: Services, provider: Provider, event: PspEvent, merchant_id: str | None
) -> int:
    """Signal an event the first time only: a replay (Adyen signs no timestamp, so a captured
    notification can be sent again forever) is acknowledged and goes no further. One delivery takes
    the event at a time (`psp_events.take`); it is remembered after it was signalled, so one that
    could not be signalled is taken again."""
    return await _once(services, provider, event, merchant_id, _signal_refund)


async def _warn_once(services: Services, provider: Provider, event: PspEvent, merchant_id: str | None) -> int:
    """An early fraud warning, taken the first time only (its refund is keyed by the warning too)."""

    async def take(services: Services, provider: Provider, event: PspEvent, merchant_id: str | None) -> int:
        if event.warning is None:
            return 0
        adapter = services.psps.get(merchant_id, provider)
        payment = await _owned_payment(services, adapter, provider, event, merchant_id)
        if payment is None:
            return 0
        return await take_warning(services, provider, event.warning, event.event_id, merchant_id, payment)

    return await _once(services, provider, event, merchant_id, take)


async def _once(
    services: Services,
    provider: Provider,
    event: PspEvent,
    merchant_id: str | None,
    act: Callable[[Services, Provider, PspEvent, str | None], Awaitable[int]],
) -> int:
    account = merchant_id or services.psps.default_merchant
    if not event.event_id:  # nothing to know it again by: signalled every time, as before
        return await act(services, provider, event, merchant_id)
    event_id = event.event_id

    def _take() -> psp_events.Take:
        with services.db.transaction() as session:
            return psp_events.take(session, provider, account, event_id)

    def _done(signalled: bool) -> None:
        with services.db.transaction() as session:
            if signalled:
                psp_events.remember(session, provider, account, event_id)
            else:
                psp_events.release(session, provider, account, event_id)

    taken = await run_in_threadpool(_take)
    if taken is psp_events.Take.DONE:
        WEBHOOK_REPLAYS.labels(source=provider.value).inc()
        return 0
    if taken is psp_events.Take.BUSY:
        # another delivery of this event is being signalled now; if it fails, the PSP's next
        # delivery takes it, so this one is asked again rather than acknowledged
        raise ApiError(503, ErrorCode.SERVICE_UNAVAILABLE, "this event is being taken now: deliver it again")
    try:
        signalled = await act(services, provider, event, merchant_id)
    except BaseException:
        await run_in_threadpool(_done, False)
        raise
    await run_in_threadpool(_done, True)
    return signalled


async def _signal_refund(
    services: Services, provider: Provider, event: PspEvent, merchant_id: str | None
) -> int:
    """Signal the refund's workflow. A failure is also handed to a workflow of its own, which
    reverses the books of a refund that had succeeded: the refund's workflow may have ended, or have
    started before open workflows reversed failures themselves (both are keyed and locked: the books
    are reversed once). Returns how many workflows were told."""
    if event.update is None:
        return 0
    if event.request_id is None:
        return await _adopt(services, provider, event, merchant_id)
    refund_workflow = workflow_id(event.request_id)
    handle = services.temporal.get_workflow_handle(refund_workflow)
    signalled = 0
    try:
        proven = _proven(services, refund_workflow, event.update, merchant_id, event.request_id)
        await handle.signal(RefundWorkflow.psp_refund_update, proven)
        signalled = 1
    except RPCError as err:
        if err.status is not RPCStatusCode.NOT_FOUND:
            raise temporal_unavailable(err, "taking this event") from err
    if event.update.status is not PspRefundStatus.FAILED:
        return signalled
    # keyed by the reporting account too: another merchant's failure naming this refund starts a run
    # of its own (refused there) and never replaces the genuine one
    late_workflow = late_failure_workflow_id(event.request_id, event.update.psp_refund_id, merchant_id)
    late = LateFailureInput(
        provider=provider,
        request_id=event.request_id,
        update=_proven(services, late_workflow, event.update, merchant_id, event.request_id),
        merchant_id=merchant_id,
    )
    try:
        # a run already under this id may be anyone's (started by hand before the PSP's event, with
        # an input that proves nothing): this one replaces it, and a closed one is run again. The
        # reversal is keyed and locked, so a genuine duplicate delivery reverses nothing twice.
        await services.temporal.start_workflow(
            LateRefundFailureWorkflow.run,
            late,
            id=late_workflow,
            task_queue=services.settings.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.TERMINATE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        )
    except RPCError as err:
        raise temporal_unavailable(err, "taking this event") from err
    return signalled + 1


async def _adopt(services: Services, provider: Provider, event: PspEvent, merchant_id: str | None) -> int:
    """A refund we never asked for (the PSP's dashboard): one workflow per PSP refund books it."""
    update, payment_reference = event.update, event.payment_reference
    if update is None or payment_reference is None or update.amount is None:
        return 0
    if await run_in_threadpool(
        _another_accounts_payment, services, provider, event, payment_reference, merchant_id
    ):
        return 0
    external = ExternalRefundInput(
        provider=provider,
        payment_reference=payment_reference,
        psp_refund_id=update.psp_refund_id,
        merchant_id=merchant_id,
    )
    external_workflow = external_refund_workflow_id(provider.value, update.psp_refund_id, merchant_id)
    proven = _proven(services, external_workflow, update, merchant_id, payment_reference)
    try:
        await _evict_squatter(services, external_workflow, external)
        await services.temporal.start_workflow(
            ExternalRefundWorkflow.run,
            external,
            id=external_workflow,
            task_queue=services.settings.task_queue,
            start_signal="psp_refund_update",
            start_signal_args=[proven],
        )
    except RPCError as err:
        raise temporal_unavailable(err, "taking this event") from err
    return 1


def _another_accounts_payment(
    services: Services, provider: Provider, event: PspEvent, payment_reference: str, merchant_id: str | None
) -> bool:
    """A PSP that cannot be read back (Adyen) tells what was refunded of a payment only through the
    payment's own account: a dashboard refund signed by another account (a merchant holds its own
    HMAC key) naming a payment the book records as someone else's is refused and written down, or it
    would take that payment's refundable amount. Where the PSP is read back, its record says whose
    payment the refund is of (`confirm_psp_outcome`)."""
    assert event.update is not None
    with services.db.transaction() as session:
        paid = session.get(PspPaymentRow, (provider.value, payment_reference))
        owner = paid.account if paid is not None else None
        if paid is None and event.account is not None and event.update.status is PspRefundStatus.SUCCEEDED:
            # no account told us of the payment yet: whose it is cannot be known, and booking it now
            # would let any account take a payment's refundable amount before its own notifications
            # arrive. The PSP delivers again until they have (a failure books nothing: taken now).
            raise ApiError(
                503,
                ErrorCode.PAYMENT_NOT_FOUND,
                f"payment {payment_reference} is not known yet: deliver this refund again later",
            )
        if owner is None or event.account is None or owner == event.account:
            return False
        why = f"names a payment of merchant account {owner}, reported by {event.account}"
        refused = AuditEvent(
            key=f"foreign_payment:{event.event_id or event.update.psp_refund_id}",
            step="psp_update_unproven",
            actor=f"psp:{provider.value}",
            reason_code=event.update.status.value,
            detail={"psp_refund_id": event.update.psp_refund_id, "why": why},
            at=datetime.now(UTC),
        )
        booking = external_request_id(provider.value, event.update.psp_refund_id, merchant_id)
        audit.record(session, booking, payment_reference, [refused])
    return True


async def _evict_squatter(services: Services, external_workflow: str, expected: ExternalRefundInput) -> None:
    """Signal-with-start gives the word to a run already open under the id, whatever input and task
    queue it was started with. One started by hand (after the booking, to wait there for the PSP's
    failure) with an input the proof does not match would refuse the PSP's real word, and one on a
    queue no worker polls would keep it for ever; the word is remembered and never taken again. Such
    a run is terminated first, so the word starts a run of the service's own."""
    handle = services.temporal.get_workflow_handle(external_workflow)
    try:
        description = await handle.describe()
        if description.status is not WorkflowExecutionStatus.RUNNING:
            return
        running = services.temporal.get_workflow_handle(external_workflow, run_id=description.run_id)
        async for event in running.fetch_history_events(page_size=1):
            payloads = event.workflow_execution_started_event_attributes.input.payloads
            [started] = await services.temporal.data_converter.decode(payloads, [ExternalRefundInput])
            break
        else:
            return
        queue = services.settings.task_queue
        if started != expected or description.task_queue != queue:
            await running.terminate(
                reason="started outside the service: its input is not the PSP event's, or no worker of "
                f"the product polls its task queue {description.task_queue}"
            )
    except RPCError as err:
        if err.status is not RPCStatusCode.NOT_FOUND:  # gone meanwhile: nothing to evict
            raise


def _proven(
    services: Services, to_workflow: str, update: PspRefundUpdate, merchant_id: str | None, about: str
) -> PspRefundUpdate:
    """The update with the service's proof that a PSP event verified with this merchant's account
    said it of this refund (our request id) or payment (a dashboard refund's), for the one workflow
    it goes to (domain/outcome_proofs.py)."""
    return sign_outcome(services.decision_keys, to_workflow, subject(merchant_id, about), update)


async def _hold(
    services: Services, adapter: PspAdapter, provider: Provider, event: PspEvent, merchant_id: str | None
) -> None:
    """Hold a disputed payment, if it is this account's (`_owned_payment`)."""
    reference = event.payment_reference
    assert reference is not None
    if await _owned_payment(services, adapter, provider, event, merchant_id) is None:
        return
    # the event's id tells a late copy of this dispute from a new one (holds.py)
    reason = f"{event.raw_type} {event.detail.get('reason', '')}".strip()
    reason = f"{reason} ({event.event_id})" if event.event_id else reason
    await run_in_threadpool(holds.open_hold, services.db, provider, reference, reason)


async def _owned_payment(
    services: Services, adapter: PspAdapter, provider: Provider, event: PspEvent, merchant_id: str | None
) -> PaymentRecord | None:
    """The payment an event names, as the reporting account knows it; None when that account does
    not (a merchant signs whatever events it likes with its own account's secret, so a dispute or a
    fraud warning naming another merchant's payment must hold and refund nothing): such an event is
    counted and written down for ops. A PSP that cannot answer now is asked again on its redelivery."""
    reference = event.payment_reference
    assert reference is not None
    try:
        lookup = await run_in_threadpool(adapter.lookup_payment, reference)
    except PspError as err:
        if err.retryable:  # the PSP sends it again on a 5xx
            raise ApiError(503, err.code, f"{provider.value} did not answer: try again") from err
        lookup = None  # this account cannot read it (its key revoked, say): it cannot vouch for it
    if lookup is None or lookup.payment.state is PaymentState.NOT_FOUND:
        WEBHOOK_FAILURES.labels(source=provider.value, code="foreign_payment").inc()
        await run_in_threadpool(_refused, services, provider, event, merchant_id)
        return None
    return lookup.payment


def _record_payment(services: Services, provider: Provider, event: PspEvent, merchant_id: str | None) -> None:
    """What a PSP account notifies of its payment, in the payment book; a payment the book keeps as
    another account's changes nothing and is listed for ops. Adyen's pspReferences are unique to one
    account and cannot be read back: the first account to report one keeps it, so a second account
    reporting it means one of them signs what is not its own (ops look it up in Adyen)."""
    assert event.payment is not None
    with services.db.transaction() as session:
        paid = session.get(PspPaymentRow, (provider.value, event.payment.reference))
        theirs = paid is not None and paid.account not in (None, event.account) and event.account is not None
    if theirs:
        WEBHOOK_FAILURES.labels(source=provider.value, code="foreign_payment").inc()
        _refused(services, provider, event, merchant_id)
        return
    DatabasePaymentBook(services.db).record(event.payment, event.account)


def _refused(
    services: Services,
    provider: Provider,
    event: PspEvent,
    merchant_id: str | None,
    code: str = "foreign_payment",
) -> None:
    """A PSP event naming a payment its account does not know (`foreign_payment`), or a refund id of
    another merchant's (`foreign_reference`), on the trail `refunds attention` reads."""
    account = merchant_id or services.psps.default_merchant
    named = {"refund": event.request_id} if event.request_id else {}
    row = AuditEvent(
        key=f"refused:{event.event_id or event.raw_type}"[:120],
        step="psp_event_refused",
        actor=f"psp:{provider.value}:{account}",
        reason_code=code,
        detail={"event": event.raw_type, "payment": event.payment_reference or ""} | named,
        at=datetime.now(UTC),
    )
    with services.db.transaction() as session:
        audit.record(session, f"psp-event:{provider.value}:{account}", event.payment_reference or "", [row])


@router.post("/{provider}", openapi_extra=_EVENT)
async def psp_webhook(provider: Provider, request: Request, services: ServicesDep) -> Response:
    return await _receive(provider, None, request, services)


@router.post("/{provider}/{merchant_id}", openapi_extra=_EVENT)
async def merchant_psp_webhook(
    provider: Provider, merchant_id: str, request: Request, services: ServicesDep
) -> Response:
    if merchant_id == services.psps.default_merchant:
        merchant_id = ""
    return await _receive(provider, merchant_id or None, request, services)


async def _receive(
    provider: Provider, merchant_id: str | None, request: Request, services: Services
) -> Response:
    try:
        adapter = services.psps.get(merchant_id, provider)
    except PspError as err:
        raise ApiError(404, ErrorCode.PROVIDER_NOT_CONFIGURED, err.message) from err
    body = await request.body()
    try:
        # off the event loop: verifying may fetch a certificate (PayPal) and must not stall the service
        events = await run_in_threadpool(adapter.parse_webhook, body, dict(request.headers))
    except WebhookRejected as err:
        WEBHOOK_FAILURES.labels(source=provider.value, code=err.code).inc()
        raise ApiError(400, err.code, err.message) from err
    signalled = 0
    owner = services.owner(merchant_id or services.settings.merchant_id)
    for event in events:
        psp_ids = (event.payment_reference, event.update.psp_refund_id if event.update else None)
        if event.kind != "ignored" and not names_own(owner, event.request_id, *psp_ids):
            # a request id of another merchant's, or a PSP id holding the separator ids are built
            # with: it would address another merchant's workflow or booking
            WEBHOOK_FAILURES.labels(source=provider.value, code="foreign_reference").inc()
            await run_in_threadpool(_refused, services, provider, event, merchant_id, "foreign_reference")
            continue
        match event.kind:
            case "refund_update":
                signalled += await _signal_once(services, provider, event, merchant_id)
            case "payment_update":
                if event.payment is not None:
                    await run_in_threadpool(_record_payment, services, provider, event, merchant_id)
            case "dispute_opened":
                if event.payment_reference is not None:
                    await _hold(services, adapter, provider, event, merchant_id)
            case "fraud_warning":
                signalled += await _warn_once(services, provider, event, merchant_id)
            case "ignored":
                pass  # acknowledged, so the PSP stops redelivering it
    acknowledgement, media_type = adapter.webhook_acknowledgement()
    return Response(acknowledgement, media_type=media_type, headers={"Refunds-Signalled": str(signalled)})
