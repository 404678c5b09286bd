"""A seeded fault-injection run: refunds through the whole product while its processes are killed and
its PSPs misbehave; then the end state is checked against the PSPs' own records and the books.

    python -m bench.chaos --seed 7 --count 200 --kills 9

Starts the Temporal dev server, the PSP sandbox, the worker and the HTTP service as separate processes
on loopback (one data dir; PostgreSQL when it answers, SQLite otherwise). Sends signed refunds across
Stripe, Adyen and PayPal: partial and full, some reviewed (two reviewers above the four-eyes amount,
some rejected; names typed into the Temporal UI's approve signal without proof before and between the
reviewers' own decisions), some with returned goods and a warehouse receipt (first a signed receipt
naming another refund and one naming none, both to be refused; then its own, twice), some sent twice,
some the PSP fails (pending, then failed) and, on Adyen and Stripe, some it fails after success; some
have their own signed PSP notifications replayed in a storm of 50-200 (before and after a late
failure). Meanwhile, from the seed: PSP faults (500, 429, slow, lost responses, stored 500s), replayed
webhooks, and SIGKILLs of the worker, the service and the Temporal server, each restarted on the same
data. The sandbox, the ground truth, is never killed.

Then it waits (with a deadline) until every refund is settled or needs attention and checks:
1 terminal or listed by `refunds attention`; 2 one standing PSP refund of the booked amount per
succeeded refund, none otherwise; 3 no workflow Failed, Terminated or TimedOut; 4 the ledger balances
per currency; 5 `refunds reconcile` clean for every PSP; 6 every audit trail complete and in time
order; 7 no reservation held for a settled refund; 8 a succeeded reviewed refund was approved by
enough different people, by proven reviewers (tokens) wherever it needed two; 9 no refund's history
holds more psp_refund_update signals than distinct PSP events about it (plus a small slack), storm or
not; 10 a refund the PSP failed after success ends failed; 11 restocks per refund and SKU within what
it returned and found sellable, only by its own receipt, once, and stock on hand their sum. Last
(--retention N), Temporal restarts on an empty database, as if retention forgot every workflow:
12 N settled refunds resent as they were answer 200 with their status, changed 409, read back their
status, and nothing starts again (no workflow, no PSP refund). Exit 1 when any broke, details above
the summary.
Every random choice comes from --seed: the same seed replays the same refunds, faults and kills (in
the same order; the machine decides the exact instants).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from temporalio.client import Client  # noqa: E402
from temporalio.service import RPCError  # noqa: E402

from adapters.db.engine import Database  # noqa: E402
from bench.chaos_invariants import TERMINAL, Check, EndState, check_all, read_end_state  # noqa: E402
from bench.chaos_plan import CURRENCY, ChaosEvent, RefundPlan, make_plans, make_schedule  # noqa: E402
from bench.chaos_psps import PROVIDERS, Psps  # noqa: E402
from bench.chaos_stack import INBOUND_SECRET, KILLABLE, REVIEWERS, Stack, drop_database, fresh_database  # noqa: E402
from domain import signature  # noqa: E402
from domain.contracts import RefundState, RetryInput, ReviewInput  # noqa: E402
from domain.naming import workflow_id  # noqa: E402
from workers.ops import SteerError, steer  # noqa: E402
from workers.temporal import connect  # noqa: E402

SETTLED = (*TERMINAL, "needs_attention")
POLL_SECONDS = 0.5


class Deadline(Exception):
    pass


async def until(probe: Any, what: str, timeout: float) -> Any:
    """Poll `probe` (async, returns a value or None) until it returns something; Deadline after."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise Deadline(f"{what}: not within {timeout:.0f}s")
        await asyncio.sleep(POLL_SECONDS)


@dataclass
class Run:
    stack: Stack
    psps: Psps
    http: httpx.AsyncClient
    plans: list[RefundPlan]
    concurrency: int
    step_timeout: float
    temporal: Client
    seed: int
    payments: dict[str, str] = field(default_factory=dict)
    progress: int = 0  # refunds accepted plus refunds settled: chaos events fire along it
    notes: list[str] = field(default_factory=list)  # what the harness saw go wrong on the way
    faults: Counter[str] = field(default_factory=Counter)
    replays: int = 0
    storm_replays: int = 0
    failed_late: set[str] = field(default_factory=set)  # refunds the PSP failed after success
    ui_signals: int = 0
    misfiled_receipts: int = 0
    retention_sample: int = 0
    done: bool = False
    _redelivered: set[str] = field(default_factory=set)

    # ---- one refund, as the merchant, the reviewers and the warehouse see it -------------------

    async def drive(self, plan: RefundPlan, gate: asyncio.Semaphore) -> None:
        async with gate:
            try:
                await self._drive(plan)
            except Deadline as err:
                self.notes.append(f"{plan.request_id}: {err}")
            except Exception as err:  # a harness failure for this refund: reported, the run goes on
                self.notes.append(f"{plan.request_id}: harness error {type(err).__name__}: {err}")

    async def _drive(self, plan: RefundPlan) -> None:
        payment = await asyncio.to_thread(
            self.psps.seed, plan.provider, plan.captured, CURRENCY, plan.behavior
        )
        if plan.provider == "adyen":  # known to us only once its notifications are in
            await until(
                lambda: self._announced(payment), f"{plan.request_id}: Adyen payment", self.step_timeout
            )
        self.payments[plan.request_id] = payment
        body = json.dumps(plan.body(payment), separators=(",", ":")).encode()
        await self._submit(plan, body)
        self.progress += 1
        if plan.resend == "early":
            await self._submit(plan, body)
        if plan.reviewed:
            await self._review(plan)
        status = await self._settled(plan)
        self.progress += 1
        storm = random.Random(f"{self.seed}:{plan.request_id}:storm")
        if plan.storm and plan.late_failure:  # half before the failure, half after it
            await self._storm(plan, payment, plan.storm // 2, storm)
        if plan.late_failure and status == "succeeded":
            await self._fail_late(plan, payment)
        if plan.storm:
            await self._storm(plan, payment, plan.storm - plan.storm // 2 * plan.late_failure, storm)
        if plan.items:
            await self._goods_received(plan)
        if plan.resend == "late":
            await self._submit(plan, body)

    async def _fail_late(self, plan: RefundPlan, payment: str) -> None:
        """The PSP fails the succeeded refund; the failure reaches us before the goods do (the
        refund's workflow is still open when goods are due)."""
        rid = plan.request_id
        if plan.provider == "adyen":
            reference = await asyncio.to_thread(self.psps.adyen_refund_reference, payment)
        else:
            reference = await asyncio.to_thread(self.psps.stripe_refund_id, payment)
        if reference is None:
            self.notes.append(f"{rid}: no standing {plan.provider} refund to fail late")
            return
        if plan.provider == "adyen":
            await asyncio.to_thread(self.psps.adyen.fail_refund_late, reference)
            probe = lambda: self._notified(reference, "REFUND_FAILED")  # noqa: E731
        else:
            await asyncio.to_thread(self.psps.stripe.fail_stripe_refund_late, reference)
            probe = lambda: self._stripe_notified(reference, "refund.failed")  # noqa: E731
        self.failed_late.add(rid)
        await until(probe, f"{rid}: late failure delivered", self.step_timeout)

    async def _stripe_notified(self, refund_id: str, event_type: str) -> bool | None:
        events = await asyncio.to_thread(self.psps.stripe.webhook_events)
        mine = [
            e
            for e in events
            if e["type"] == event_type and e["payload"]["data"]["object"].get("id") == refund_id
        ]
        if mine and all(e["state"] == "delivered" or e["id"] in self._redelivered for e in mine):
            return True
        await self.redeliver("stripe")
        return None

    async def _storm(self, plan: RefundPlan, payment: str, count: int, rng: random.Random) -> None:
        """Replay the refund's own signed PSP notifications `count` times, a few at once, as a PSP
        redelivering (or anyone holding a captured Adyen notification, which carries no timestamp)."""
        psp_ids = [
            r.psp_refund_id for r in await asyncio.to_thread(self.psps.refunds_of, plan.provider, payment)
        ]
        deliveries = await asyncio.to_thread(self.psps.deliveries, plan.provider)
        own = sorted(
            (d for d in deliveries if any(psp_id in d.body for psp_id in psp_ids)), key=lambda d: d.event_id
        )
        if not own:
            self.notes.append(f"{plan.request_id}: no notifications of its own to replay")
            return
        picks = [own[rng.randrange(len(own))] for _ in range(count)]
        gate = asyncio.Semaphore(4)

        async def one(delivery: Any) -> None:
            async with gate:
                try:
                    status = await asyncio.to_thread(self.psps.send, delivery)
                except httpx.HTTPError:
                    return  # the service is down: a replay lost
                if 200 <= status < 300:
                    self.storm_replays += 1

        await asyncio.gather(*(one(d) for d in picks))

    async def _announced(self, payment: str) -> bool | None:
        if await asyncio.to_thread(self.psps.adyen_payment_announced, payment, self._redelivered):
            return True
        await self.redeliver("adyen")  # the sandbox gave up while the service was down
        return None

    async def _notified(self, psp_reference: str, event_code: str) -> bool | None:
        notes = await asyncio.to_thread(self.psps.adyen.notifications, psp_reference)
        mine = [n for n in notes if n["event_code"] == event_code]
        if mine and all(n["state"] == "delivered" or n["id"] in self._redelivered for n in mine):
            return True
        await self.redeliver("adyen")
        return None

    def _signed(self, body: bytes) -> dict[str, str]:
        return {
            "content-type": "application/json",
            "Refund-Signature": signature.sign([INBOUND_SECRET], int(time.time()), body),
        }

    async def _submit(self, plan: RefundPlan, body: bytes) -> None:
        async def attempt() -> httpx.Response | None:
            try:  # signed afresh on every attempt, as a merchant's retry would be
                response = await self.http.post(
                    "/v1/refund-requests", content=body, headers=self._signed(body)
                )
            except httpx.HTTPError:
                return None
            return None if response.status_code >= 500 else response

        response = await until(attempt, f"{plan.request_id}: intake", self.step_timeout)
        if response.status_code not in (200, 202):
            self.notes.append(
                f"{plan.request_id}: intake answered {response.status_code} {response.text[:200]}"
            )

    async def status(self, request_id: str) -> str | None:
        try:
            response = await self.http.get(f"/v1/refunds/{request_id}", headers=_bearer("alice"))
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        return str(response.json()["status"])

    async def _receipt_taken(self, request_id: str, receipt_id: str) -> bool:
        try:
            response = await self.http.get(f"/v1/refunds/{request_id}", headers=_bearer("alice"))
        except httpx.HTTPError:
            return False
        returns = response.json().get("returns") or {} if response.status_code == 200 else {}
        return receipt_id in returns.get("receipts", [])

    async def _settled(self, plan: RefundPlan) -> str:
        async def probe() -> str | None:
            status = await self.status(plan.request_id)
            return status if status in SETTLED else None

        return str(await until(probe, f"{plan.request_id}: settling", self.step_timeout))

    async def _review(self, plan: RefundPlan) -> None:
        async def awaiting() -> str | None:
            status = await self.status(plan.request_id)
            return status if status == "awaiting_review" or status in SETTLED else None

        status = await until(awaiting, f"{plan.request_id}: awaiting review", self.step_timeout)
        if status != "awaiting_review":
            self.notes.append(f"{plan.request_id}: {status} without review")
            return
        decisions = [(name, "approve") for name in plan.approvers]
        if plan.rejected_by:
            decisions = [(plan.rejected_by, "reject")]
        typed = list(plan.ui_names)
        for reviewer, verb in decisions:
            if typed:  # a Temporal UI user approves first, under a name typed in, with no proof
                await self._ui_approve(plan, typed.pop(0))

            async def decide(reviewer: str = reviewer, verb: str = verb) -> httpx.Response | None:
                body = json.dumps({"reason": "chaos run"} if verb == "reject" else {}).encode()
                headers = {"content-type": "application/json", **_bearer(reviewer)}
                try:
                    response = await self.http.post(
                        f"/v1/refunds/{plan.request_id}/{verb}", content=body, headers=headers
                    )
                except httpx.HTTPError:
                    return None
                return None if response.status_code >= 500 else response

            response = await until(decide, f"{plan.request_id}: {verb} by {reviewer}", self.step_timeout)
            # a retry after a lost answer finds the decision taken: the refund moved on, or was closed
            repeated = "invalid_state" in response.text or (
                response.status_code == 404 and await self._settled(plan) in SETTLED
            )
            if response.status_code != 200 and not repeated:
                self.notes.append(
                    f"{plan.request_id}: {verb} by {reviewer}: {response.status_code} {response.text}"
                )

    async def _ui_approve(self, plan: RefundPlan, name: str) -> None:
        handle = self.temporal.get_workflow_handle(workflow_id(plan.request_id))

        async def attempt() -> bool | None:
            try:
                await handle.signal("approve_from_ui", ReviewInput(reviewer=name))
            except RPCError:
                return None  # Temporal is down (it is brought back): the UI user clicks again
            return True

        await until(attempt, f"{plan.request_id}: UI approval as {name}", self.step_timeout)
        self.ui_signals += 1

    async def _goods_received(self, plan: RefundPlan) -> None:
        receipt_id = f"rcpt-{plan.request_id}"
        receipt = {
            "receipt_id": receipt_id,
            "lines": [
                {"sku": item["sku"], "received": item["quantity"], "sellable": sellable}
                for item, sellable in zip(plan.items, plan.sellable, strict=True)
            ],
            "received_by": "warehouse-chaos",
            "request_id": plan.request_id,  # the signed receipt names its refund
        }
        # first, receipts that are not this refund's: its own goods, signed, but naming another
        # refund (a warehouse posting to the wrong URL), and a receipt naming none; both refused
        other = self._neighbour(plan)
        misfiled = [
            {**receipt, "receipt_id": f"rcpt-misfiled-{plan.request_id}", "request_id": other},
            {k: v for k, v in receipt.items() if k != "request_id"}
            | {"receipt_id": f"rcpt-unbound-{plan.request_id}"},
        ]
        for wrong in misfiled:
            response = await self._post_receipt(plan, json.dumps(wrong, separators=(",", ":")).encode())
            self.misfiled_receipts += 1
            if response.status_code != 422:
                self.notes.append(
                    f"{plan.request_id}: receipt {wrong['receipt_id']} (for {wrong.get('request_id')}) "
                    f"answered {response.status_code} {response.text[:200]}"
                )
        body = json.dumps(receipt, separators=(",", ":")).encode()
        for sent in range(2):  # the warehouse sends its receipt twice: it restocks once
            response = await self._post_receipt(plan, body)
            if response.status_code == 404 and await self._receipt_taken(plan.request_id, receipt_id):
                continue  # a retry after a lost answer: the receipt closed the return the first time
            if response.status_code != 200 and sent == 0:
                self.notes.append(
                    f"{plan.request_id}: goods receipt {response.status_code} {response.text[:200]}"
                )

    def _neighbour(self, plan: RefundPlan) -> str:
        """Another refund with returned goods (or any other), whose URL a receipt might be misfiled to."""
        others = [p.request_id for p in self.plans if p.items and p.request_id != plan.request_id]
        others = others or [p.request_id for p in self.plans if p.request_id != plan.request_id]
        return others[sum(map(ord, plan.request_id)) % len(others)] if others else "chaos-nobody"

    async def _post_receipt(self, plan: RefundPlan, body: bytes) -> httpx.Response:
        async def attempt() -> httpx.Response | None:
            try:
                response = await self.http.post(
                    f"/v1/refunds/{plan.request_id}/goods-received", content=body, headers=self._signed(body)
                )
            except httpx.HTTPError:
                return None
            return None if response.status_code >= 500 else response

        response: httpx.Response = await until(
            attempt, f"{plan.request_id}: goods receipt", self.step_timeout
        )
        return response

    # ---- chaos ------------------------------------------------------------------------------------

    async def chaos(self, schedule: list[ChaosEvent], kills: Counter[str]) -> None:
        """Fire each event once the run has come that far (refunds accepted plus refunds settled, out
        of twice their number); revive anything that died meanwhile."""
        for event in schedule:
            while self.progress < event.at * 2 * len(self.plans) and not self.done:
                await self._revive()
                await asyncio.sleep(POLL_SECONDS)
            await self._fire(event, kills)
        await self._revive()

    async def _revive(self) -> None:
        for name in await asyncio.to_thread(self.stack.revive):
            self.notes.append(f"{name} died on its own and was started again")

    async def _fire(self, event: ChaosEvent, kills: Counter[str]) -> None:
        if event.action == "kill":
            await asyncio.to_thread(self.stack.kill, event.target)
            kills[event.target] += 1
        elif event.action == "fault":
            d = event.detail
            await asyncio.to_thread(
                self.psps.inject, event.target, d["kind"], d["path"], d["method"], d["count"], d["millis"]
            )
            self.faults[d["kind"]] += d["count"]
        else:
            deliveries = await asyncio.to_thread(self.psps.deliveries, event.target)
            delivered = [d for d in deliveries if d.state == "delivered"]
            if delivered:
                chosen = delivered[int(event.detail["pick"] * len(delivered))]
                try:
                    await asyncio.to_thread(self.psps.send, chosen)
                    self.replays += 1
                except httpx.HTTPError:
                    pass  # the service is down: a replay lost, as a PSP's would be

    async def redeliver(self, provider: str) -> int:
        """Send again what the sandbox gave up on (it retries for seconds; a PSP retries for days)."""
        sent = 0
        for delivery in await asyncio.to_thread(self.psps.deliveries, provider):
            if delivery.state == "failed" and delivery.event_id not in self._redelivered:
                try:
                    status = await asyncio.to_thread(self.psps.send, delivery)
                except httpx.HTTPError:
                    continue
                if 200 <= status < 300:
                    self._redelivered.add(delivery.event_id)
                    sent += 1
        return sent

    # ---- retention -------------------------------------------------------------------------------

    async def forgotten(self, end: EndState, sample: int) -> Check:
        """Temporal restarted on an empty database (retention forgot every closed workflow): a
        sample of settled refunds, resent as they were, is answered 200 with its settled status and
        starts nothing (no workflow, no PSP refund); resent changed, 409; read back, its status."""
        check = Check(12, "settled after retention")
        rng = random.Random(f"{self.seed}:retention")
        settled = [
            p
            for p in self.plans
            if p.request_id in self.payments
            and p.request_id in end.rows
            and end.rows[p.request_id].status in TERMINAL
        ]
        chosen = rng.sample(settled, min(sample, len(settled)))
        before = {
            p.request_id: len(
                await asyncio.to_thread(self.psps.refunds_of, p.provider, self.payments[p.request_id])
            )
            for p in chosen
        }
        await asyncio.to_thread(self.stack.forget)
        for plan in chosen:
            rid, status = plan.request_id, end.rows[plan.request_id].status
            body = plan.body(self.payments[rid])
            changed = {**body, "order_id": f"{body['order_id']}-changed"}
            for sent, expected in ((body, 200), (changed, 409)):
                raw = json.dumps(sent, separators=(",", ":")).encode()
                response = await self._post(rid, "/v1/refund-requests", raw)
                answered = response.json().get("status") if response.status_code == 200 else None
                if response.status_code != expected or (expected == 200 and answered != status):
                    check.failures.append(
                        f"{rid} ({status}): resent {'as it was' if expected == 200 else 'changed'}, "
                        f"answered {response.status_code} {response.text[:160]}"
                    )
            read = await self.status(rid)
            if read != status:
                check.failures.append(f"{rid} ({status}): read back as {read}")
        client = await connect(self.stack.settings())
        started = {e.id async for e in client.list_workflows()}
        for plan in chosen:
            rid = plan.request_id
            if workflow_id(rid) in started:
                check.failures.append(f"{rid}: a workflow started again after retention")
            now = len(await asyncio.to_thread(self.psps.refunds_of, plan.provider, self.payments[rid]))
            if now != before[rid]:
                check.failures.append(f"{rid}: {now - before[rid]} new PSP refunds after retention")
        self.retention_sample = len(chosen)
        check.measure = f"{len(chosen)} resent twice and read"
        return check

    async def _post(self, rid: str, path: str, body: bytes) -> httpx.Response:
        async def attempt() -> httpx.Response | None:
            try:
                response = await self.http.post(path, content=body, headers=self._signed(body))
            except httpx.HTTPError:
                return None
            return None if response.status_code >= 500 else response

        response: httpx.Response = await until(attempt, f"{rid}: POST {path}", self.step_timeout)
        return response

    # ---- the end ----------------------------------------------------------------------------------

    async def quiesce(self, timeout: float, retry_attention: bool) -> list[str]:
        """Wait until every refund is settled (workflow closed) or needs attention, and no webhook or
        late-failure workflow is still on its way; retry needs_attention ones once if asked."""
        client = await connect(self.stack.settings())
        retried: list[str] = []

        async def quiet() -> bool | None:
            for provider in PROVIDERS:
                await self.redeliver(provider)
            pending = 0
            for provider in PROVIDERS:
                pending += sum(
                    d.state == "pending" for d in await asyncio.to_thread(self.psps.deliveries, provider)
                )
            running = [e.id async for e in client.list_workflows('ExecutionStatus = "Running"')]
            waiting = []
            for wf in running:
                if not wf.startswith("refund-"):
                    waiting.append(wf)
                    continue
                status = await self.status(wf.removeprefix("refund-"))
                if status != "needs_attention":
                    waiting.append(wf)
                elif retry_attention and wf not in retried:
                    retried.append(wf)
                    try:
                        await steer(
                            self.stack.settings(), wf, "retry", RetryInput(operator="chaos"), RefundState
                        )
                    except SteerError as err:
                        self.notes.append(f"{wf}: retry refused: {err.code} {err}")
                    waiting.append(wf)
            return True if not waiting and not pending else None

        try:
            await until(quiet, "quiescence", timeout)
        except Deadline as err:
            self.notes.append(str(err))
        return retried


def _verdict(check: Check) -> str:
    verdict = "ok" if check.ok else f"BROKEN({len(check.failures)})"
    verdict += f" [{check.measure}]" if check.measure else ""
    return verdict + (f" (not checkable: {','.join(check.skipped)})" if check.skipped else "")


def _bearer(reviewer: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {REVIEWERS[reviewer]}"}


async def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    since = datetime.now(UTC) - timedelta(minutes=1)
    data_dir = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="refunds-chaos-"))
    database_url, database_name = fresh_database(data_dir, args.sqlite)
    stack = Stack(data_dir, database_url, workflow_sandbox=args.workflow_sandbox)
    tag = str(args.seed)  # ids from the seed too: every run has a fresh Temporal, database and sandbox
    plans = make_plans(args.seed, args.count, tag)
    schedule = make_schedule(args.seed, args.count, args.kills)
    kills: Counter[str] = Counter({name: 0 for name in KILLABLE})
    checks: list[Check] = []
    phases: dict[str, float] = {}  # when each phase ended
    try:
        await asyncio.to_thread(stack.start)
        phases["start"] = time.monotonic()
        psps = Psps(stack.sandbox_url, stack.service_url)
        async with httpx.AsyncClient(base_url=stack.service_url, timeout=30) as http:
            temporal = await connect(stack.settings())
            chaos_run = Run(
                stack, psps, http, plans, args.concurrency, args.step_timeout, temporal, args.seed
            )
            gate = asyncio.Semaphore(args.concurrency)
            chaos = asyncio.create_task(chaos_run.chaos(schedule, kills))
            await asyncio.gather(*(chaos_run.drive(plan, gate) for plan in plans))
            phases["refunds"] = time.monotonic()
            chaos_run.done = True
            await chaos
            await asyncio.to_thread(psps.clear_faults)
            await chaos_run.quiesce(args.settle_timeout, args.retry_attention)
            phases["settle"] = time.monotonic()
            client = await connect(stack.settings())
            db = Database.connect(database_url)
            try:
                end = await read_end_state(client, db, stack.settings(), plans, chaos_run.payments)
                end.failed_late = set(chaos_run.failed_late)
                checks = await check_all(client, db, stack.settings(), psps, plans, end, since)
                phases["checks"] = time.monotonic()
                if args.retention:
                    checks.append(await chaos_run.forgotten(end, args.retention))
                    phases["retention"] = time.monotonic()
            finally:
                db.dispose()
            psps.close()
    finally:
        await asyncio.to_thread(stack.stop)
        phases["stop"] = time.monotonic()
        if database_name and not args.keep:
            drop_database(database_name)
        if not args.keep and not args.data_dir:
            shutil.rmtree(data_dir, ignore_errors=True)

    for note in chaos_run.notes:
        print(f"note: {note}")
    for check in checks:
        for failure in check.failures:
            print(f"invariant {check.number} ({check.name}) broken: {failure}")
    outcome = Counter(end.rows[p.request_id].status if p.request_id in end.rows else "none" for p in plans)
    summary = {
        "seed": args.seed,
        "refunds": args.count,
        "outcomes": dict(outcome),
        "faults": sum(chaos_run.faults.values()),
        "faults_by_kind": dict(chaos_run.faults),
        "webhook_replays": chaos_run.replays,
        "storm_replays": chaos_run.storm_replays,
        "stormed_refunds": sum(1 for p in plans if p.storm),
        "late_failures": dict(Counter(p.provider for p in plans if p.request_id in chaos_run.failed_late)),
        "ui_signals": chaos_run.ui_signals,
        "misfiled_receipts": chaos_run.misfiled_receipts,
        "retention_sample": chaos_run.retention_sample,
        "kills": dict(kills),
        "crashes": {n: c.crashes for n, c in stack.children.items() if c.crashes},
        "invariants": {f"{c.number}": _verdict(c) for c in checks},
        "duration_s": round(time.monotonic() - started, 1),
        "phases_s": {name: round(at - started, 1) for name, at in phases.items()},
        "database": database_url.split(":")[0],
        "data_dir": str(data_dir) if args.keep or args.data_dir else None,
    }
    print("summary " + json.dumps(summary, separators=(",", ":")))
    return 0 if checks and all(check.ok for check in checks) else 1


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--count", type=int, default=200, help="refunds")
    parser.add_argument("--kills", type=int, default=9, help="SIGKILLs in all (worker, service, Temporal)")
    parser.add_argument("--concurrency", type=int, default=24, help="refunds in flight at once")
    parser.add_argument("--step-timeout", type=float, default=240, help="seconds a refund may take per step")
    parser.add_argument(
        "--settle-timeout", type=float, default=180, help="seconds to wait for quiet at the end"
    )
    parser.add_argument(
        "--retention",
        type=int,
        default=12,
        help="at the end, Temporal on an empty database; this many settled refunds resent and read (0: skip)",
    )
    parser.add_argument("--retry-attention", action="store_true", help="retry needs_attention refunds once")
    parser.add_argument("--sqlite", action="store_true", help="SQLite even where PostgreSQL answers")
    parser.add_argument("--workflow-sandbox", action="store_true", help="Temporal's determinism sandbox on")
    parser.add_argument(
        "--data-dir", default="", help="a new, empty one (default: a temp dir, removed after)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the data dir and database")
    code = asyncio.run(run(parser.parse_args()))
    sys.stdout.flush()
    os._exit(code)  # skip finalisation: the Temporal client's native runtime may abort it


if __name__ == "__main__":
    main()
