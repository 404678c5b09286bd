"""The end state a chaos run must leave, checked against the sandbox's own records and the database."""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlmodel import col
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from adapters.db import audit, holds, ledger
from adapters.db.engine import Database
from adapters.db.models import (
    LedgerTransferRow,
    PspPaymentRow,
    RefundRow,
    ReservationRow,
    RestockRow,
    StockRow,
)
from adapters.psp.base import PspError
from bench.chaos_plan import RefundPlan
from bench.chaos_psps import PROVIDERS, PspRefund, Psps
from bench.chaos_stack import REVIEWERS
from bench.chaos_tenant import ADYEN_ACCOUNT as TENANT_ADYEN
from bench.chaos_tenant import NAME as TENANT
from bench.chaos_tenant import Attack
from bench.chaos_truth import UNPROVEN_STEP, Extra, Truth
from domain import identity
from domain.contracts import RefundState
from domain.fraud_warnings import AUDIT_STEP as FRAUD_WARNING_STEP
from domain.naming import external_request_id, workflow_id
from domain.status import ErrorCode, Provider
from workers.ops import needing_attention
from workers.reconcile import reconcile_provider
from workers.settings import Settings
from workflows.refund.confirmation import MAX_AUDITED_UNPROVEN

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

    rows: dict[str, RefundRow]  # the plans' refunds and the run's extra ones
    payments: dict[str, str]  # request id -> PSP payment reference
    workflows: dict[str, WorkflowExecutionStatus | None]
    # request id -> what ops must act on (needs_attention before failed_after_success)
    attention: dict[str, str]
    failed_late: set[str] = field(default_factory=set)  # the PSP failed these after success
    unproven: set[str] = field(default_factory=set)  # listed by `refunds attention` as unproven_psp_update
    truth: Truth = field(default_factory=Truth)


async def read_end_state(
    client: Client,
    db: Database,
    settings: Settings,
    plans: list[RefundPlan],
    payments: dict[str, str],
    truth: Truth,
) -> EndState:
    with db.transaction() as session:
        ids = [plan.request_id for plan in plans] + [extra.request_id for extra in truth.extras]
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
    attention: dict[str, str] = {}
    unproven: set[str] = set()
    for rid, state, _ in await needing_attention(settings):
        if state == "unproven_psp_update":  # a listing for ops, not a state the refund waits in
            unproven.add(rid)
        elif attention.get(rid) != "needs_attention":
            attention[rid] = state
    return EndState(rows, payments, workflows, attention, unproven=unproven, truth=truth)


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
        reconciled(settings, since, psps),
        audit_trails(db, plans, end),
        no_reservation_held(db, end),
        await review_proven(client, plans, end),
        await replays_leave_history_alone(client, psps, plans, end),
        late_failures_land(plans, end),
        restocked_once(db, plans, end),
        forged_outcomes_refused(db, psps, plans, end),
        replays_refused(db, psps, plans, end),
        dashboard_refunds_land(db, psps, end),
        warnings_refund_the_rest(db, psps, plans, end),
        second_refund_after_reversal(db, psps, end),
        await hostile_tenant_moves_nothing(client, db, psps, end),
    ]


def every_refund_settled(plans: list[RefundPlan], end: EndState) -> Check:
    check = Check(1, "terminal or attention")
    for plan in plans:
        rid = plan.request_id
        row, run = end.rows.get(rid), end.workflows.get(rid)
        if end.attention.get(rid) == "needs_attention":
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
    # refunds the run asked for beside the plan's on its payment (checks 16 and 17 weigh them)
    claimed: dict[str, set[str]] = defaultdict(set)
    for extra in end.truth.extras:
        if (theirs := end.rows.get(extra.request_id)) is not None and theirs.psp_refund_id:
            claimed[extra.payment].add(theirs.psp_refund_id)
    for plan in plans:
        rid, payment = plan.request_id, end.payments.get(plan.request_id)
        if payment is None:
            continue  # never seeded (the run stopped early): nothing to compare
        standing = [
            r
            for r in psps.refunds_of(plan.provider, payment)
            if r.standing and r.psp_refund_id not in claimed[payment]
        ]
        row = end.rows.get(rid)
        status = row.status if row else "no row"
        if row is not None and row.status == "succeeded":
            if len(standing) != 1:
                ids = ",".join(r.psp_refund_id for r in standing) or "none"
                check.failures.append(f"{rid}: succeeded, {len(standing)} standing PSP refunds ({ids})")
            elif standing[0].amount != row.amount or standing[0].psp_refund_id != row.psp_refund_id:
                got = standing[0]
                # everything the payment holds, and which of our rows claim which refund: what a
                # swap between two refunds of one payment would show
                held = ", ".join(
                    f"{r.psp_refund_id} {r.amount} {r.status}"
                    for r in psps.refunds_of(plan.provider, payment)
                )
                others = ", ".join(
                    f"{extra.request_id}->{end.rows[extra.request_id].psp_refund_id}"
                    for extra in end.truth.extras
                    if extra.payment == payment and extra.request_id in end.rows
                )
                check.failures.append(
                    f"{rid}: booked {row.amount} as {row.psp_refund_id}, PSP has {got.amount} "
                    f"as {got.psp_refund_id} (payment holds: {held}; "
                    f"other requests on it: {others or 'none'})"
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


def reconciled(settings: Settings, since: datetime, psps: Psps) -> Check:
    """Every PSP's refunds against the books: Stripe and PayPal listed through their APIs, Adyen from
    its Settlement details report (the sandbox's, in Adyen's published layout)."""
    check = Check(5, "reconcile clean")
    for provider in PROVIDERS:
        report = (
            psps.adyen.settlement_report(settings.adyen_merchant_account) if provider == "adyen" else None
        )
        try:
            found = reconcile_provider(settings, Provider(provider), since, report=report)
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
        # the run's own signals around the service (checks 13, 14) are not the PSP's events
        signals -= min(signals, end.truth.direct_signals[plan.request_id])
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
        if plan.request_id not in end.failed_late or end.attention.get(plan.request_id) == "needs_attention":
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


# ---- the PSP is the truth (checks 13-17) ---------------------------------------------------------


def _books(session: Session, refunds: list[PspRefund], row: RefundRow) -> list[str]:
    """The refund's row, its books and the PSP's own record agree: succeeded, the PSP holds its
    refund standing for the amount and the ledger holds it once; settled otherwise, the PSP holds
    nothing standing under it and the ledger nothing for it. A refund waiting for ops is not judged."""
    theirs = next((r for r in refunds if r.psp_refund_id == row.psp_refund_id), None)
    balances = ledger.balances(session, row.request_id)
    debits = sum(v for v in balances.values() if v > 0)
    credits = -sum(v for v in balances.values() if v < 0)
    problems = []
    if row.status == "succeeded":
        if theirs is None or not theirs.standing or theirs.amount != row.amount:
            held = f"{theirs.amount} {theirs.status}" if theirs else "nothing"
            problems.append(f"booked {row.amount} as {row.psp_refund_id}, the PSP holds {held}")
        if debits != row.amount or credits != row.amount:
            problems.append(f"booked {row.amount}, the ledger holds {debits} (debits) / {credits} (credits)")
    elif row.status in TERMINAL:
        if theirs is not None and theirs.standing:
            problems.append(f"{row.status}, yet the PSP holds {theirs.psp_refund_id}={theirs.amount}")
        if balances:
            problems.append(f"{row.status}, yet the ledger holds {debits}")
    return problems


def _refused(session: Session, request_id: str, psp_refund_id: str) -> int:
    """Rows of the refund's trail for an outcome about `psp_refund_id` refused for want of proof."""
    return sum(
        entry.step == UNPROVEN_STEP and entry.detail.get("psp_refund_id") == psp_refund_id
        for entry in audit.trail(session, request_id)
    )


def forged_outcomes_refused(db: Database, psps: Psps, plans: list[RefundPlan], end: EndState) -> Check:
    """Forged outcomes (no proof, the service's proof for another workflow, a stranger's key) change
    nothing: the refund's status and books are the PSP's own record; every one its workflow took (up
    to the product's limit) is on its trail as psp_update_unproven, and `refunds attention` lists it."""
    check = Check(13, "forged outcomes change nothing")
    truth, by_id = end.truth, {p.request_id: p for p in plans}
    audited = 0
    with db.transaction() as session:
        for rid, taken in sorted(truth.forged.items()):
            plan, row, psp_id = by_id[rid], end.rows.get(rid), truth.forged_ids[rid]
            refused = _refused(session, rid, psp_id)
            audited += refused
            problems = []
            if refused < min(taken, MAX_AUDITED_UNPROVEN):
                problems.append(f"{taken} forged outcomes taken, {refused} on its trail")
            if rid not in end.unproven:
                problems.append("not listed by refunds attention as unproven_psp_update")
            if row is None:
                problems.append("no row")
            else:
                problems += _books(session, psps.refunds_of(plan.provider, end.payments[rid]), row)
            if problems:
                status = row.status if row else "-"
                check.failures.append(
                    f"{rid} ({plan.provider}, forged {plan.forge}, {status}): " + "; ".join(problems)
                )
    check.measure = f"{sum(truth.forged.values())} forged on {len(truth.forged)} refunds, {audited} refused"
    return check


def replays_refused(db: Database, psps: Psps, plans: list[RefundPlan], end: EndState) -> Check:
    """A proven outcome replayed into another refund is refused there (its proof names the first
    refund's workflow) and written to that trail; replayed into its own, it is a duplicate. Neither
    moves anything: both refunds' status and books are the PSP's own record."""
    check = Check(14, "replayed outcomes change nothing")
    truth, by_id = end.truth, {p.request_id: p for p in plans}
    with db.transaction() as session:
        judged = set(truth.replayed_own)
        for source, (target, psp_id) in sorted(truth.replayed_into.items()):
            judged |= {source, target}
            if not _refused(session, target, psp_id):
                check.failures.append(
                    f"{target}: took {source}'s proven outcome ({psp_id}), not on its trail"
                )
        for rid in sorted(judged):
            row, plan = end.rows.get(rid), by_id[rid]
            if row is None or rid not in end.payments:
                continue  # check 1 reports it
            problems = _books(session, psps.refunds_of(plan.provider, end.payments[rid]), row)
            if problems:
                check.failures.append(f"{rid} ({plan.provider}, {row.status}): " + "; ".join(problems))
    check.measure = (
        f"{len(truth.replayed_into)} into another refund, {len(truth.replayed_own)} into their own"
    )
    return check


def dashboard_refunds_land(db: Database, psps: Psps, end: EndState) -> Check:
    """A dashboard refund the PSP failed has no standing posting (`external:<psp>:<id>` balances
    empty, row failed, reservation released) and our refund of the whole capture then succeeds; one
    that stands is booked once (row succeeded for the PSP's amount, reservation committed)."""
    check = Check(15, "dashboard refunds booked or reversed")
    after = {extra.source: extra for extra in end.truth.extras if extra.kind == "after"}
    counted: dict[str, int] = defaultdict(int)
    with db.transaction() as session:
        for record in end.truth.dashboards:
            dash = record.plan
            if record.psp_refund_id is None:
                check.failures.append(f"{dash.key} ({dash.provider}): the dashboard refund was not made")
                continue
            rid = external_request_id(dash.provider, record.psp_refund_id)
            refunds = psps.refunds_of(dash.provider, record.payment)
            theirs = next((r for r in refunds if r.psp_refund_id == record.psp_refund_id), None)
            row = session.get(RefundRow, rid)
            reservation = session.get(ReservationRow, rid)
            held = reservation.state if reservation else "no reservation"
            problems = []
            if row is None:
                problems.append("never booked")
            elif theirs is not None and theirs.standing:
                counted["stood"] += 1
                problems += _books(session, refunds, row)
                if held != "committed":
                    problems.append(f"reservation {held}")
            else:
                counted["failed"] += 1
                if row.status != "failed":
                    problems.append(f"the PSP failed it, row {row.status}")
                if balances := ledger.balances(session, rid):
                    problems.append(f"postings standing {balances}")
                if held != "released":
                    problems.append(f"reservation {held}")
                ours = after.get(dash.key)
                mine = session.get(RefundRow, ours.request_id) if ours else None
                if ours is not None and (
                    mine is None or mine.status != "succeeded" or mine.amount != dash.captured
                ):
                    got = f"{mine.status} {mine.failure_code or ''} {mine.amount}" if mine else "no row"
                    problems.append(f"then our refund of the whole {dash.captured}: {got}")
            if problems:
                state = row.status if row else "-"
                check.failures.append(
                    f"{dash.key} {rid} ({dash.amount} of {dash.captured}, {state}): " + "; ".join(problems)
                )
    check.measure = f"{counted['failed']} failed late, {counted['stood']} stood"
    return check


def warnings_refund_the_rest(db: Database, psps: Psps, plans: list[RefundPlan], end: EndState) -> Check:
    """An early fraud warning after a partial refund refunds exactly what is left of the capture:
    never more, never refused as exceeding it because earlier refunds were not counted."""
    check = Check(16, "fraud warning refunds the rest")
    by_id = {p.request_id: p for p in plans}
    with db.transaction() as session:
        for rid, warned in sorted(end.truth.warnings.items()):
            plan, payment = by_id[rid], end.payments[rid]
            refunds = psps.refunds_of(plan.provider, payment)
            standing = sum(r.amount for r in refunds if r.standing)
            row = session.get(RefundRow, warned)
            problems = []
            if standing > plan.captured:
                problems.append(f"the PSP refunded {standing} of a {plan.captured} capture")
            if row is None:
                decided = [
                    e.reason_code for e in audit.trail(session, warned) if e.step == FRAUD_WARNING_STEP
                ]
                problems.append(f"no refund (the warning decided {decided})")
            elif row.status != "succeeded":
                problems.append(f"{row.status} {row.failure_code or ''}".strip())
            else:
                others = standing - sum(
                    r.amount for r in refunds if r.standing and r.psp_refund_id == row.psp_refund_id
                )
                if row.amount != plan.captured - others:
                    problems.append(f"refunded {row.amount}, {plan.captured - others} was left")
                problems += _books(session, refunds, row)
            if problems:
                check.failures.append(
                    f"{warned} after {rid} ({plan.provider}, {plan.booked} of {plan.captured}): "
                    + "; ".join(problems)
                )
    check.measure = f"{len(end.truth.warnings)} warnings"
    return check


def second_refund_after_reversal(db: Database, psps: Psps, end: EndState) -> Check:
    """After a late failure was reversed, a new request for the same amount succeeds: the reversal
    gave the payment's refundable amount back (never refused as nothing left)."""
    check = Check(17, "refundable again after a reversal")
    again = [extra for extra in end.truth.extras if extra.kind == "again"]
    with db.transaction() as session:
        for extra in again:
            row = session.get(RefundRow, extra.request_id)
            problems = []
            if row is None:
                problems.append("no row")
            elif row.status != "succeeded" or row.amount != extra.amount:
                problems.append(f"{row.status} {row.failure_code or ''} {row.amount}, asked {extra.amount}")
            else:
                problems += _books(session, psps.refunds_of(extra.provider, extra.payment), row)
            if problems:
                check.failures.append(
                    f"{extra.request_id} after {extra.source} ({extra.provider}): " + "; ".join(problems)
                )
    check.measure = f"{len(again)} second refunds"
    return check


async def hostile_tenant_moves_nothing(client: Client, db: Database, psps: Psps, end: EndState) -> Check:
    """What the hostile tenant signed of another merchant's refunds and payments moved nothing: no
    hold on the payment, the refund and its books as the PSP says, the failure it named refused on
    the refund's trail, its disputes and warnings refused and listed for ops, the payment book as
    the payment's own account told it, the rest of the payment still refundable by its merchant;
    and nothing of the tenant's own (no refund, posting or open workflow) came of it."""
    check = Check(18, "a hostile tenant moves nothing of another merchant's")
    rest = {extra.source: extra for extra in end.truth.extras if extra.kind == "rest"}
    with db.transaction() as session:
        for rid, attack in sorted(end.truth.hostile.items()):
            problems = _attacked(session, psps, attack, rid in end.failed_late, rest.get(rid))
            if problems:
                check.failures.append(f"{rid} ({attack.victim.provider}): " + "; ".join(problems))
        theirs = session.execute(select(RefundRow).where(col(RefundRow.merchant) == TENANT)).scalars()
        check.failures += [f"the tenant's {row.request_id} ({row.status})" for row in theirs]
        postings = session.execute(
            select(LedgerTransferRow).where(col(LedgerTransferRow.merchant) == TENANT)
        ).scalars()
        check.failures += [f"a posting of the tenant's: {row.request_id}" for row in postings]
    running = [
        e.id async for e in client.list_workflows('ExecutionStatus = "Running"') if f"{TENANT}~" in e.id
    ]
    check.failures += [f"the tenant's workflow {wf} still running" for wf in running]
    sent = sum(len(attack.sent) for attack in end.truth.hostile.values())
    check.measure = f"{sent} events on {len(end.truth.hostile)} refunds"
    return check


def _attacked(
    session: Session, psps: Psps, attack: Attack, failed_late: bool, rest: Extra | None
) -> list[str]:
    victim, problems = attack.victim, []
    provider = Provider(victim.provider)
    if holds.held(session, provider, victim.payment) is not None:
        problems.append("its payment is held")
    row = session.get(RefundRow, victim.request_id)
    expected = "failed" if failed_late else "succeeded"
    refunds = psps.refunds_of(victim.provider, victim.payment)
    if row is None or row.status != expected:
        problems.append(f"{row.status if row else 'no row'}, the PSP's word is {expected}")
    elif row.status == "succeeded":
        problems += _books(session, refunds, row)
    listed = audit.trail(session, f"psp-event:{victim.provider}:{TENANT}")
    at_route = any(e.detail.get("refund") == victim.request_id for e in listed)
    if not (at_route or _refused(session, victim.request_id, victim.psp_refund_id)):
        problems.append("the failure it named is not refused (at the route or on its trail)")
    for hostile in attack.acknowledged("dispute") + attack.acknowledged("warning"):
        if not any(
            e.detail.get("event") == hostile.event_type and e.detail.get("payment") == victim.payment
            for e in listed
        ):
            problems.append(f"its {hostile.kind} ({hostile.event_type}) is not listed as refused")
    paid = session.get(PspPaymentRow, (victim.provider, victim.payment))
    if paid is not None and (paid.account == TENANT_ADYEN or paid.amount_captured > victim.captured):
        problems.append(f"the payment book says {paid.amount_captured} captured for {paid.account}")
    if rest is not None:
        mine = session.get(RefundRow, rest.request_id)
        if mine is None or mine.status != "succeeded" or mine.amount != rest.amount:
            got = f"{mine.status} {mine.failure_code or ''} {mine.amount}" if mine else "no row"
            problems.append(f"then its merchant's refund of the rest {rest.amount}: {got}")
    return problems
