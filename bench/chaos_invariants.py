"""The end state a chaos run must leave, checked against the sandbox's own records and the database."""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlmodel import col
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from adapters.db import audit, ledger
from adapters.db.engine import Database
from adapters.db.models import RefundRow, ReservationRow, RestockRow, StockRow
from adapters.psp.base import PspError
from bench.chaos_plan import RefundPlan
from bench.chaos_psps import PROVIDERS, Psps
from bench.chaos_stack import REVIEWERS
from domain import identity
from domain.contracts import RefundState
from domain.naming import workflow_id
from domain.status import ErrorCode, Provider
from workers.ops import needing_attention
from workers.reconcile import reconcile_provider
from workers.settings import Settings

TERMINAL = ("succeeded", "failed", "rejected", "cancelled")
# psp_refund_update signals a refund's history may hold beyond one per distinct PSP event: a first
# delivery signalled and then lost with a killed service (the event is remembered after its signal),
# and two deliveries of one event arriving at once
REPLAY_SLACK = 2
BROKEN_RUNS = 'ExecutionStatus = "Failed" OR ExecutionStatus = "Terminated" OR ExecutionStatus = "TimedOut"'


@dataclass
class Check:
    number: int
    name: str
    failures: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # what the product cannot check (and why)
    measure: str = ""  # what it measured, for the summary

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass
class EndState:
    """What the checks read once, shared by all of them."""

    rows: dict[str, RefundRow]
    payments: dict[str, str]  # request id -> PSP payment reference
    workflows: dict[str, WorkflowExecutionStatus | None]
    attention: dict[str, str]  # request id -> state (needs_attention, failed_after_success)
    failed_late: set[str] = field(default_factory=set)  # the PSP failed these after success


async def read_end_state(
    client: Client, db: Database, settings: Settings, plans: list[RefundPlan], payments: dict[str, str]
) -> EndState:
    with db.transaction() as session:
        ids = [plan.request_id for plan in plans]
        found = session.execute(select(RefundRow).where(col(RefundRow.request_id).in_(ids))).scalars()
        rows = {row.request_id: row for row in found}
        for row in rows.values():
            session.expunge(row)
    workflows: dict[str, WorkflowExecutionStatus | None] = {}
    for plan in plans:
        try:
            workflows[plan.request_id] = (
                await client.get_workflow_handle(workflow_id(plan.request_id)).describe()
            ).status
        except RPCError:
            workflows[plan.request_id] = None
    attention = {rid: state for rid, state, _ in await needing_attention(settings)}
    return EndState(rows, payments, workflows, attention)


async def check_all(
    client: Client,
    db: Database,
    settings: Settings,
    psps: Psps,
    plans: list[RefundPlan],
    end: EndState,
    since: datetime,
) -> list[Check]:
    return [
        every_refund_settled(plans, end),
        one_psp_refund_each(psps, plans, end),
        await no_broken_workflow(client),
        ledger_balances(db, end),
        reconciled(settings, since),
        audit_trails(db, plans, end),
        no_reservation_held(db, end),
        await review_proven(client, plans, end),
        await replays_leave_history_alone(client, psps, plans, end),
        late_failures_land(plans, end),
        restocked_once(db, plans, end),
    ]


def every_refund_settled(plans: list[RefundPlan], end: EndState) -> Check:
    check = Check(1, "terminal or attention")
    for plan in plans:
        rid = plan.request_id
        row, run = end.rows.get(rid), end.workflows.get(rid)
        if rid in end.attention:
            continue
        closed = run is WorkflowExecutionStatus.COMPLETED
        if row is None or row.status not in TERMINAL or not closed:
            status = row.status if row else "no row"
            check.failures.append(f"{rid}: database {status}, workflow {run.name if run else 'missing'}")
    return check


def one_psp_refund_each(psps: Psps, plans: list[RefundPlan], end: EndState) -> Check:
    """The sandbox's refunds per payment (one payment per refund): one standing refund of the booked
    amount for a succeeded refund, none for anything else."""
    check = Check(2, "one PSP refund per success")
    for plan in plans:
        rid, payment = plan.request_id, end.payments.get(plan.request_id)
        if payment is None:
            continue  # never seeded (the run stopped early): nothing to compare
        standing = [r for r in psps.refunds_of(plan.provider, payment) if r.standing]
        row = end.rows.get(rid)
        status = row.status if row else "no row"
        if row is not None and row.status == "succeeded":
            if len(standing) != 1:
                ids = ",".join(r.psp_refund_id for r in standing) or "none"
                check.failures.append(f"{rid}: succeeded, {len(standing)} standing PSP refunds ({ids})")
            elif standing[0].amount != row.amount or standing[0].psp_refund_id != row.psp_refund_id:
                got = standing[0]
                check.failures.append(
                    f"{rid}: booked {row.amount} as {row.psp_refund_id}, PSP has {got.amount} "
                    f"as {got.psp_refund_id}"
                )
        elif standing:
            described = ",".join(f"{r.psp_refund_id}={r.amount} {r.status}" for r in standing)
            check.failures.append(f"{rid}: {status}, yet the PSP holds {described}")
    return check


async def no_broken_workflow(client: Client) -> Check:
    check = Check(3, "no failed workflow")
    async for execution in client.list_workflows(BROKEN_RUNS):
        status = execution.status.name if execution.status else "?"
        check.failures.append(f"{execution.id} ({execution.workflow_type}): {status}")
    return check


def ledger_balances(db: Database, end: EndState) -> Check:
    """Debits equal credits per currency, posted and pending; a settled refund holds nothing pending."""
    check = Check(4, "ledger balances")
    with db.transaction() as session:
        for pending in (False, True):
            totals: dict[str, int] = defaultdict(int)
            for (_, currency), balance in ledger.balances(session, pending=pending).items():
                totals[currency] += balance
            for currency, total in totals.items():
                if total:
                    kind = "pending" if pending else "posted"
                    check.failures.append(f"{kind} {currency}: debits - credits = {total}")
        for rid, row in end.rows.items():
            if row.status in TERMINAL and ledger.balances(session, rid, pending=True):
                check.failures.append(f"{rid}: {row.status}, pending transfers left unresolved")
    return check


def reconciled(settings: Settings, since: datetime) -> Check:
    check = Check(5, "reconcile clean")
    for provider in PROVIDERS:
        try:
            found = reconcile_provider(settings, Provider(provider), since)
        except PspError as err:
            if err.code is ErrorCode.NOT_SUPPORTED:  # Adyen: no API lists refunds; check 2 covers it
                check.skipped.append(provider)
            else:
                check.failures.append(f"{provider}: reconcile failed: {err.code.value} {err.message}")
            continue
        for d in found:
            check.failures.append(
                f"{provider} {d.kind.value}: request {d.request_id or '-'} PSP refund {d.psp_refund_id} "
                f"payment {d.payment_reference}: ours {d.ours}, theirs {d.theirs}"
            )
    return check


def audit_trails(db: Database, plans: list[RefundPlan], end: EndState) -> Check:
    """Validated, then status changes in order, the last one naming the final status; times never
    go back."""
    check = Check(6, "audit complete")
    with db.transaction() as session:
        for plan in plans:
            rid, row = plan.request_id, end.rows.get(plan.request_id)
            if row is None:
                continue  # check 1 reports it
            trail = audit.trail(session, rid)
            steps = [entry.step for entry in trail]
            problems = []
            if "validated" not in steps and "validation_failed" not in steps:
                problems.append("no validation")
            changes = [entry for entry in trail if entry.status_after]
            if not changes or changes[-1].status_after != row.status:
                last = changes[-1].status_after if changes else "none"
                problems.append(f"last status change {last}, row {row.status}")
            if row.status == "succeeded" and "ledger_posted" not in steps:
                problems.append("succeeded without ledger_posted")
            back = [
                f"{a.step}@{a.at:%H:%M:%S.%f}>{b.step}@{b.at:%H:%M:%S.%f}"
                for a, b in itertools.pairwise(trail)
                if b.at < a.at
            ]
            if back:
                problems.append("out of time order: " + "; ".join(back[:3]))
            if problems:
                check.failures.append(f"{rid} ({row.status}): " + ", ".join(problems))
    return check


def no_reservation_held(db: Database, end: EndState) -> Check:
    check = Check(7, "no held reservation")
    with db.transaction() as session:
        held = session.execute(
            select(col(ReservationRow.request_id)).where(col(ReservationRow.state) == "held")
        ).scalars()
        for rid in held:
            row = end.rows.get(rid)
            if row is not None and row.status in TERMINAL:
                check.failures.append(f"{rid}: {row.status}, reservation still held")
    return check


async def _state(client: Client, request_id: str) -> RefundState | None:
    try:
        state: RefundState = await client.get_workflow_handle(workflow_id(request_id)).query(
            "state", result_type=RefundState
        )
    except RPCError:
        return None
    return state


async def review_proven(client: Client, plans: list[RefundPlan], end: EndState) -> Check:
    """Every succeeded refund that waited for review was approved by enough different people; where
    it needed two, each a reviewer the service proved (their token), never a name typed in the
    Temporal UI."""
    check = Check(8, "review by proven people")
    counted: dict[str, int] = defaultdict(int)
    for plan in plans:
        row = end.rows.get(plan.request_id)
        if not plan.reviewed or row is None:
            continue
        state = await _state(client, plan.request_id)
        if state is None:
            check.failures.append(f"{plan.request_id} ({row.status}): its workflow cannot be asked")
            continue
        needed = state.risk.approvals_needed if state.risk else 1
        names = [a.reviewer for a in state.approvals]
        for name in names:
            counted["ui" if name.startswith(identity.UI_PREFIX) else "proven"] += 1
        people = [identity.person(name) for name in names]
        problems = []
        if len(set(people)) != len(people):
            problems.append("one person approved twice")
        if row.status == "succeeded":
            if state.review is None or not state.review.approved or len(names) < needed:
                problems.append(f"{len(names)} of {needed} approvals")
            if needed > 1 and any(name not in REVIEWERS for name in names):
                problems.append("four eyes counted an unproven name")
        if problems:
            check.failures.append(
                f"{plan.request_id} ({row.status}, needs {needed}): approvals {names}: " + ", ".join(problems)
            )
    check.measure = f"approvals {dict(counted)}"
    return check


async def replays_leave_history_alone(
    client: Client, psps: Psps, plans: list[RefundPlan], end: EndState
) -> Check:
    """A replayed PSP notification never reaches a refund's workflow again: its history holds at
    most one psp_refund_update signal per distinct PSP event about its refund (plus REPLAY_SLACK),
    however many times the events were replayed."""
    check = Check(9, "replays leave history alone")
    worst, longest, stormed_longest = 0, 0, 0
    bodies = {provider: [d.body for d in psps.deliveries(provider)] for provider in PROVIDERS}
    for plan in plans:
        payment = end.payments.get(plan.request_id)
        if payment is None:
            continue
        psp_ids = [r.psp_refund_id for r in psps.refunds_of(plan.provider, payment)]
        distinct = sum(any(i in body for i in psp_ids) for body in bodies[plan.provider])
        try:
            history = await client.get_workflow_handle(workflow_id(plan.request_id)).fetch_history()
        except RPCError as err:
            check.failures.append(f"{plan.request_id}: no history ({err.message})")
            continue
        signals = sum(
            event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
            and event.workflow_execution_signaled_event_attributes.signal_name == "psp_refund_update"
            for event in history.events
        )
        worst, longest = max(worst, signals - distinct), max(longest, len(history.events))
        if plan.storm:
            stormed_longest = max(stormed_longest, len(history.events))
        if signals > distinct + REPLAY_SLACK:
            check.failures.append(
                f"{plan.request_id} ({plan.provider}, stormed {plan.storm}): {signals} PSP signals for "
                f"{distinct} PSP events; history {len(history.events)} events"
            )
    check.measure = f"signals-events max {worst}, history max {longest}, stormed max {stormed_longest}"
    return check


def late_failures_land(plans: list[RefundPlan], end: EndState) -> Check:
    """A refund the PSP failed after success ends failed (its books reversed), storm or no storm."""
    check = Check(10, "late failure lands")
    for plan in plans:
        if plan.request_id not in end.failed_late or plan.request_id in end.attention:
            continue
        row = end.rows.get(plan.request_id)
        if row is None or row.status != "failed":
            status = row.status if row else "no row"
            check.failures.append(f"{plan.request_id} ({plan.provider}, stormed {plan.storm}): {status}")
    return check


def restocked_once(db: Database, plans: list[RefundPlan], end: EndState) -> Check:
    """Restocked units per refund and SKU never exceed what that refund returned (nor what the
    warehouse found sellable); only the refund's own receipt restocks, under that refund alone;
    stock on hand is the sum of the restocks."""
    check = Check(11, "restocked once")
    returned: dict[tuple[str, str], int] = defaultdict(int)
    sellable: dict[tuple[str, str], int] = defaultdict(int)
    for plan in plans:
        for item, good in zip(plan.items, plan.sellable, strict=True):
            returned[plan.request_id, item["sku"]] += int(item["quantity"])
            sellable[plan.request_id, item["sku"]] += good
    with db.transaction() as session:
        restocks = list(session.execute(select(RestockRow)).scalars())
        stock = {row.sku: row.on_hand for row in session.execute(select(StockRow)).scalars()}
    units: dict[tuple[str, str], int] = defaultdict(int)
    per_sku: dict[str, int] = defaultdict(int)
    owners: dict[str, set[str]] = defaultdict(set)
    for row in restocks:
        units[row.request_id, row.sku] += row.units
        per_sku[row.sku] += row.units
        owners[row.receipt_id].add(row.request_id)
        if row.receipt_id != f"rcpt-{row.request_id}":
            check.failures.append(
                f"{row.request_id}: receipt {row.receipt_id} restocked {row.units} {row.sku}"
            )
    for (rid, sku), total in sorted(units.items()):
        if total > returned.get((rid, sku), 0) or total > sellable.get((rid, sku), 0):
            check.failures.append(
                f"{rid}: {total} {sku} restocked, {returned.get((rid, sku), 0)} returned, "
                f"{sellable.get((rid, sku), 0)} sellable"
            )
    for receipt, rids in sorted(owners.items()):
        if len(rids) > 1:
            check.failures.append(f"receipt {receipt} restocked for {sorted(rids)}")
    check.measure = f"{len(restocks)} restocks, {sum(per_sku.values())} units"
    for sku in sorted(set(stock) | set(per_sku)):
        if stock.get(sku, 0) != per_sku.get(sku, 0):
            check.failures.append(f"{sku}: {stock.get(sku, 0)} on hand, {per_sku.get(sku, 0)} restocked")
    return check
