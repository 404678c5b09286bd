"""What the CLI's ops commands do: read and steer refunds through Temporal and the database."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import timedelta
from typing import Any, TypeVar, cast

from rich.console import Console
from rich.text import Text
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError, TemporalError
from temporalio.service import RPCError, RPCStatusCode

from adapters.db import audit, outbound_events, refunds
from adapters.db.engine import Database
from domain.clients import HELD_AT_INTAKE
from domain.contracts import CancelInput, RefundState, RetryInput, ReviewInput, VoidApprovalInput
from domain.fraud_warnings import AUDIT_STEP, REASON_CODE, Action
from domain.money import format_minor
from domain.naming import (
    SA_AMOUNT,
    SA_CURRENCY,
    SA_ESCALATED,
    SA_MERCHANT,
    SA_REVIEW_SINCE,
    SA_RISK_SCORE,
    request_id_from_workflow_id,
    workflow_id,
)
from domain.recorded import as_recorded
from domain.returns import GoodsReceipt
from domain.status import ErrorCode, RefundStatus
from workers.merchants import MERCHANT_ID
from workers.settings import Settings
from workers.temporal import connect
from workers.terminal import printable
from workflows.refund import RefundWorkflow

T = TypeVar("T")

PENDING_QUERY = (
    'WorkflowType = "RefundWorkflow" AND ExecutionStatus = "Running" '
    f'AND RefundStatus = "{RefundStatus.AWAITING_REVIEW.value}"'
)


_HELD_AT_INTAKE = HELD_AT_INTAKE | {REASON_CODE}

QUERY_SECONDS = 5.0  # a refund no worker answers for: the server alone would wait 30 s per query


def _within(seconds: float | None = None) -> timedelta:
    """How long one query may take: QUERY_SECONDS, or less when less is left (a second at least)."""
    return timedelta(seconds=QUERY_SECONDS if seconds is None else min(QUERY_SECONDS, max(1.0, seconds)))


class SteerError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


async def refund_view(settings: Settings, request_id: str) -> dict[str, Any] | None:
    db = Database.existing(settings.database_url)  # first: no database here says more than Temporal
    try:
        return await _view(await connect(settings), db, request_id)
    finally:
        db.dispose()


async def _view(
    client: Client, db: Database, request_id: str, query_seconds: float | None = None
) -> dict[str, Any] | None:
    """The workflow's state with the audit trail; the settled row when Temporal has forgotten it."""
    state: RefundState | None = None
    try:
        state = await client.get_workflow_handle(workflow_id(request_id)).query(
            RefundWorkflow.state, rpc_timeout=_within(query_seconds)
        )
    except RPCError as err:
        if err.status is not RPCStatusCode.NOT_FOUND:
            raise
    with db.transaction() as session:
        trail = audit.trail(session, request_id)
        settled = refunds.settled_state(session, request_id)
    shown = as_recorded(state, settled) if state is not None else settled  # after Temporal's retention
    if shown is None:
        return None
    return {**shown.model_dump(mode="json"), "audit": [entry.model_dump(mode="json") for entry in trail]}


ENDED = {RefundStatus.SUCCEEDED, RefundStatus.FAILED, RefundStatus.REJECTED, RefundStatus.CANCELLED}


async def wait_for_status(
    settings: Settings, request_id: str, wanted: RefundStatus, timeout_seconds: float
) -> dict[str, Any] | None:
    """The refund once it is in `wanted`, or as it is when it has ended elsewhere or time is up; a
    refund no worker answers for is asked again until then, never waited on past it."""
    deadline = time.monotonic() + timeout_seconds
    pause = 0.05
    db = Database.existing(settings.database_url)  # once: each poll is a query and a read, no more
    try:
        client = await connect(settings)
        while True:
            try:
                view = await _view(client, db, request_id, deadline - time.monotonic())
            except RPCError:
                if time.monotonic() >= deadline:
                    raise
            else:
                if view is None:
                    return None  # no such refund: nothing to wait for
                status = RefundStatus(view["status"])
                if status is wanted or status in ENDED or time.monotonic() >= deadline:
                    return view
            await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, 1.0)
    finally:
        db.dispose()


def _plain(console: Console, text: str) -> None:
    """Ids, reasons and messages are the merchant's or a reviewer's text: never read as markup, their
    control characters shown, never acted on by the terminal."""
    console.print(printable(text), markup=False, highlight=False, soft_wrap=True)


def _capped(risk: dict[str, Any]) -> str:
    """The score is at most 100 however many points its reasons add up to: say so when they do."""
    points = sum(int(reason["points"]) for reason in risk["reasons"])
    return f" (of {points} points, capped at 100)" if points > int(risk["score"]) else ""


def render_refund(console: Console, view: dict[str, Any]) -> None:
    amount = view.get("amount") or view.get("requested_amount")
    money = f"{format_minor(amount['value'], amount['currency'])} {amount['currency']}" if amount else "-"
    headline = printable(f"  {view['status']}  ({view['method']})")
    console.print(Text.assemble((printable(view["request_id"]), "bold"), headline))
    _plain(console, f"  {view['provider']} payment {view['payment_reference']}  order {view['order_id']}")
    # a void's PSP id is the authorisation it cancelled (the payment's own id at Stripe)
    label = "PSP void of" if view.get("method") == "void" else "PSP refund"
    _plain(console, f"  amount {money}  {label} {view.get('psp_refund_id') or '-'}")
    if view.get("requested_by"):
        _plain(console, f"  requested by {view['requested_by']}")
    warning = warning_taken(view["audit"])
    if warning is not None:
        detail = warning["detail"]
        _plain(
            console,
            f"  made on early fraud warning {detail.get('warning', '?')} "
            f"({detail.get('fraud_type') or 'fraud type unknown'}), policy: {warning['reason_code']}",
        )
    if view.get("failure_code"):
        console.print(
            Text.assemble(
                "  ",
                (printable(view["failure_code"]), "red"),
                printable(f" {view.get('failure_message', '')}"),
            )
        )
    risk = view.get("risk")
    if risk:
        reasons = "; ".join(f"{r['code']} +{r['points']}: {r['detail']}" for r in risk["reasons"])
        _plain(
            console,
            f"  risk {risk['score']}{_capped(risk)} ({'review' if risk['requires_review'] else 'auto'}): "
            f"{reasons}",
        )
    review = view.get("review")
    if review:
        verdict = "approved" if review["approved"] else "rejected"
        _plain(console, f"  review {verdict} by {review['reviewer']} {review.get('reason', '')}")
    allocation = view.get("allocation")
    if allocation:
        render_allocation(console, allocation)
    console.print("  audit:")
    render_audit(console, view["audit"])


def warning_taken(trail: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The audit row of the early fraud warning this refund was started on (a later delivery of it
    is only recorded); None for a refund no warning started."""
    taken = [row for row in trail if row["step"] == AUDIT_STEP]
    started = [row for row in taken if row["reason_code"] != Action.RECORD.value]
    return next(iter(started or taken), None)


def render_allocation(console: Console, allocation: dict[str, Any]) -> None:
    currency = allocation["currency"]

    def money(value: int) -> str:
        return format_minor(value, currency)

    _plain(console, f"  allocation ({currency}):")
    for line in allocation["lines"]:
        goods, tax = money(line["goods"]), money(line["tax"])
        _plain(console, f"    {line['sku']} x{line['quantity']}  goods {goods}  tax {tax}")
    _plain(
        console,
        f"    shipping {money(allocation['shipping'])}  unallocated {money(allocation['unallocated'])}",
    )


def render_audit(console: Console, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        status = f"{row['status_before'] or ''} → {row['status_after']}" if row["status_after"] else ""
        psp = f"{row['psp_request_id']} {row['psp_response_ms']}ms" if row["psp_request_id"] else ""
        parts = [
            str(row["at"])[11:23],
            f"{row['step']:<24}",
            f"{row['actor']:<16}",
            row["reason_code"] or "",
            status,
            psp,
        ]
        _plain(console, "    " + "  ".join(part for part in parts if part))
        detail = row.get("detail") or {}
        why = detail.get("message") or detail.get("why")
        if why:  # what the step's code stands for, in words (why a refund failed, say)
            _plain(console, f"        {why}")
        if detail.get("explanation"):  # why whoever asked says the customer should be refunded
            _plain(console, f"        explanation: {detail['explanation']}")


async def pending_reviews(settings: Settings, merchant_id: str | None = None) -> list[tuple[str, ...]]:
    """The review queue from visibility (one merchant's, when given), with each refund's reasons and
    approvals from its query; escalated refunds first, then the longest waiting."""
    client = await connect(settings)
    rows: list[tuple[bool, str, tuple[str, ...]]] = []
    query = PENDING_QUERY
    if merchant_id is not None:
        if not MERCHANT_ID.fullmatch(merchant_id):
            raise SteerError("invalid_request", f"{merchant_id!r} is not a merchant id")
        query += f' AND {SA_MERCHANT.name} = "{merchant_id}"'
    async for execution in client.list_workflows(query):
        attrs = execution.typed_search_attributes
        amount = attrs.get(SA_AMOUNT)
        currency = attrs.get(SA_CURRENCY) or ""
        money = f"{format_minor(amount, currency)} {currency}" if amount is not None else "-"
        since = attrs.get(SA_REVIEW_SINCE) or execution.start_time
        escalated = bool(attrs.get(SA_ESCALATED))
        reasons, approvals = "", ""
        try:
            handle = client.get_workflow_handle(execution.id)
            state: RefundState = await handle.query(RefundWorkflow.state, rpc_timeout=_within())
        except RPCError:
            pass  # no worker answers right now: visibility alone is still worth showing
        else:
            if state.risk is not None:
                # a reason given at intake (a client over its limits, an early fraud warning the
                # policy holds) holds the refund at no points
                shown = [r.code for r in state.risk.reasons if r.points or r.code in _HELD_AT_INTAKE]
                if state.requested_by:
                    shown.append(f"requested by {state.requested_by}")
                reasons = ", ".join(shown)
                approvals = f"{len(state.approvals)}/{state.risk.approvals_needed}"
        row = (
            request_id_from_workflow_id(execution.id),
            money,
            str(attrs.get(SA_RISK_SCORE) or "-"),
            reasons,
            approvals,
            since.isoformat(timespec="seconds"),
            "yes" if escalated else "",
        )
        rows.append((not escalated, row[5], row))
    return [row for _, _, row in sorted(rows)]


ATTENTION_QUERY = (
    'WorkflowType = "RefundWorkflow" AND ExecutionStatus = "Running" '
    f'AND RefundStatus = "{RefundStatus.NEEDS_ATTENTION.value}"'
)


async def needing_attention(settings: Settings) -> list[tuple[str, str, str]]:
    """Refunds ops must act on: stuck in needs_attention, or failed at the PSP after succeeding."""
    client = await connect(settings)
    rows = []
    async for execution in client.list_workflows(ATTENTION_QUERY):
        handle = client.get_workflow_handle(execution.id)
        state = await handle.query(RefundWorkflow.state, rpc_timeout=_within())
        reason = f"{state.failure_code.value if state.failure_code else ''} {state.failure_message}"
        rows.append((state.request_id, "needs_attention", reason.strip()))
    db = Database.existing(settings.database_url)
    try:
        with db.transaction() as session:
            for entry in audit.entries_with_step(session, "late_failure_reversed"):
                rows.append((entry.request_id, "failed_after_success", entry.reason_code or ""))
            for entry in audit.entries_with_step(session, "late_failure_not_reversed"):
                told = entry.detail.get("why", "reverse by hand: it failed before this release")
                why = f"{entry.reason_code or ''} {told}"
                rows.append((entry.request_id, "failed_after_success", why))
            for entry in audit.entries_with_step(session, "psp_event_refused"):
                # a merchant's account named a payment (or refund) it does not own: another's
                named = entry.detail.get("refund") or entry.detail.get("payment", "")
                what = "refund" if entry.detail.get("refund") else "payment"
                why = f"{entry.actor} named {what} {named} it does not own"
                rows.append((entry.request_id, "foreign_psp_event", why))
            for health in outbound_events.endpoint_health(session):
                if not health.enabled:  # the merchant's systems hear nothing until it is enabled again
                    kept = f"{health.owed} event{'' if health.owed == 1 else 's'} kept for it"
                    why = f"{health.disabled_reason or 'disabled'}; {kept}"
                    rows.append((health.endpoint_id, "events_endpoint_disabled", why))
            for entry in audit.entries_with_step(session, "psp_update_unproven"):
                # someone went around the service (a Temporal signal, a workflow started by hand)
                why = f"{entry.reason_code or ''} signalled without proof: {entry.detail.get('why', '')}"
                rows.append((entry.request_id, "unproven_psp_update", why.strip()))
    finally:
        db.dispose()
    return rows


async def steer(
    settings: Settings,
    wf_id: str,
    update: str,
    argument: ReviewInput | RetryInput | CancelInput | VoidApprovalInput | GoodsReceipt,
    result_type: type[T],
) -> T:
    client = await connect(settings)
    handle = client.get_workflow_handle(wf_id)
    try:
        state: T = await handle.execute_update(update, argument, result_type=result_type)
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        if isinstance(cause, ApplicationError):
            raise SteerError(cause.type or "update_failed", cause.message) from err
        raise SteerError("update_failed", str(err)) from err
    except RPCError as err:
        if err.status is not RPCStatusCode.NOT_FOUND:
            raise SteerError("temporal_unavailable", err.message) from err
        request_id = request_id_from_workflow_id(wf_id)
        finished = await refund_view(settings, request_id)
        if finished is None:
            raise SteerError("not_found", f"no refund {request_id}") from err
        raise SteerError(
            ErrorCode.ALREADY_FINISHED, f"refund {request_id} already finished ({finished['status']})"
        ) from err
    if result_type is RefundState:  # the workflow acted on it in the same task: show where it went
        with contextlib.suppress(TemporalError):  # taken either way: the update's answer stands
            state = cast(T, await handle.query(RefundWorkflow.state, rpc_timeout=_within()))
    return state
