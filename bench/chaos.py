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

The PSP is the truth (bench/chaos_truth.py), also from the seed:
- forged outcomes: `psp_refund_update` signals sent straight to Temporal, `failed` and `succeeded`,
  each without proof, with the service's own proof signed for another workflow (the late-failure
  workflow, another refund) and with a key of nobody's; to refunds awaiting the PSP's confirmation
  (Stripe, PayPal: their PSP refund held pending until the signals are in, then settled as planned)
  and to succeeded refunds still open for their returned goods (every PSP);
- replayed outcomes: a proven signal's input read out of a refund's history (decoded by the shared
  data converter: the chaos stack sets no payload keys, so histories hold it in clear; with keys the
  converter decrypts) and signalled to the first other refund whose workflow is open, and again to
  its own;
- dashboard refunds on payments of their own (Adyen's Customer Area, Stripe's API with no metadata
  of ours), some failed later by the PSP (then our refund of the whole capture follows), some left;
- early fraud warnings after a partial refund (Stripe Radar, Adyen NOTIFICATION_OF_FRAUD; PayPal
  sends no early fraud warning), under a policy that refunds what is left;
- a second request for the same amount once a late failure was reversed (Stripe, Adyen; PayPal has
  no failure after COMPLETED);
- a hostile tenant (bench/chaos_tenant.py): a second merchant with PSP accounts of its own signs, on
  its own webhook route, events naming succeeded refunds of the default merchant and their payments
  (a dispute, a failure of the refund, a dashboard refund of the whole payment, an early fraud
  warning under a policy that refunds them, and on Adyen a capture of ten times the payment); then
  the payment's own merchant refunds the rest of it.

Then it waits (with a deadline) until every refund is settled or needs attention and checks:
1 terminal or listed by `refunds attention` (as needing ops); 2 one standing PSP refund of the booked
amount per succeeded refund, none otherwise (refunds the run asked for beside it on its payment are
weighed by 16 and 17); 3 no workflow Failed, Terminated or TimedOut; 4 the ledger balances per
currency; 5 `refunds reconcile` clean for every PSP; 6 every audit trail complete and in time order;
7 no reservation held for a settled refund; 8 a succeeded reviewed refund was approved by enough
different people, by proven reviewers (tokens) wherever it needed two; 9 no refund's history holds
more psp_refund_update signals than distinct PSP events about it (plus a small slack; the run's own
signals around the service not counted), storm or not; 10 a refund the PSP failed after success ends
failed; 11 restocks per refund and SKU within what it returned and found sellable, only by its own
receipt, once, and stock on hand their sum; 13 forged outcomes change nothing: status and books are
the PSP's own record, every forged signal its workflow took is on its trail as psp_update_unproven
(up to the product's limit) and `refunds attention` lists it; 14 a replayed outcome is refused by
the other refund (on its trail) and a duplicate at home, both refunds' status and books the PSP's;
15 a dashboard refund the PSP failed has no standing posting (`external:<psp>:<id>` balances empty,
row failed, reservation released) and our refund of the whole capture then succeeds; one that stands
is booked once (row, ledger, committed reservation); 16 a fraud warning's refund (`efw-...`) after a
partial refund refunds exactly what is left, never more than the capture, never refused as exceeding
it; 17 the second request after a reversed late failure succeeds for the same amount; 18 the hostile
tenant moved nothing: no hold on the payment, the refund and its books the PSP's, the failure it
named refused on the refund's trail, its disputes and warnings listed as refused, the payment book
as the payment's own account told it, the rest of the payment refunded by its merchant, and no
refund, posting or open workflow of the tenant's own. Last
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
from temporalio.service import RPCError, RPCStatusCode  # noqa: E402

from adapters.db import audit  # noqa: E402
from adapters.db.engine import Database  # noqa: E402
from adapters.db.models import RefundRow  # noqa: E402
from bench.chaos_invariants import TERMINAL, Check, EndState, check_all, read_end_state  # noqa: E402
from bench.chaos_plan import (  # noqa: E402
    CURRENCY,
    REVIEW_FROM,
    ChaosEvent,
    DashboardPlan,
    RefundPlan,
    make_dashboards,
    make_plans,
    make_schedule,
)
from bench.chaos_psps import PROVIDERS, Psps  # noqa: E402
from bench.chaos_stack import INBOUND_SECRET, KILLABLE, REVIEWERS, Stack, drop_database, fresh_database  # noqa: E402
from bench.chaos_tenant import Attack, Hostile, Tenant, Victim  # noqa: E402
from bench.chaos_truth import (  # noqa: E402
    SIGNAL,
    UNPROVEN_STEP,
    DashboardRecord,
    Extra,
    Truth,
    forged_updates,
    proven_signals,
)
from domain import signature  # noqa: E402
from domain.contracts import PspRefundUpdate, RefundState, RetryInput, ReviewInput  # noqa: E402
from domain.fraud_warnings import AUDIT_STEP as FRAUD_WARNING_STEP  # noqa: E402
from domain.money import Money  # noqa: E402
from domain.naming import external_request_id, late_failure_workflow_id, workflow_id  # noqa: E402
from workers.ops import SteerError, steer  # noqa: E402
from workers.temporal import connect  # noqa: E402

SETTLED = (*TERMINAL, "needs_attention")
POLL_SECONDS = 0.5
REDELIVER_SECONDS = 5.0  # how often a waiting refund has its PSP's given-up webhooks sent again


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
    db: Database  # the product's database, read (never written) while the run waits on it
    tenant: Tenant  # the hostile second merchant
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
    truth: Truth = field(default_factory=Truth)  # what was done around the service, for checks 13-17
    done: bool = False
    _redelivered: set[str] = field(default_factory=set)
    _redelivered_at: dict[str, float] = field(default_factory=dict)
    _redelivering: dict[str, asyncio.Lock] = field(default_factory=dict)

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
            self.psps.seed, plan.provider, plan.captured, CURRENCY, plan.behavior, plan.held
        )
        if plan.provider == "adyen":  # known to us only once its notifications are in
            await until(
                lambda: self._announced(payment), f"{plan.request_id}: Adyen payment", self.step_timeout
            )
        self.payments[plan.request_id] = payment
        body = json.dumps(plan.body(payment), separators=(",", ":")).encode()
        await self._submit(plan.request_id, body)
        self.progress += 1
        if plan.resend == "early":
            await self._submit(plan.request_id, body)
        if plan.reviewed:
            await self._review(plan)
        if plan.held:  # forged outcomes while it awaits the PSP, then the PSP settles it
            await self._forge_while_confirming(plan, payment)
        status = await self._settled(plan)
        self.progress += 1
        if status == "succeeded" and plan.forge == "open":  # its workflow waits for the goods
            await self._forge_open(plan, payment)
        if status == "succeeded" and plan.replay:
            await self._replay(plan)
        if status == "succeeded" and plan.warning:
            await self._warn(plan, payment)
        if status == "succeeded" and plan.hostile:
            await self._hostile(plan, payment)
        storm = random.Random(f"{self.seed}:{plan.request_id}:storm")
        if plan.storm and plan.late_failure:  # half before the failure, half after it
            await self._storm(plan, payment, plan.storm // 2, storm)
        if plan.late_failure and status == "succeeded":
            await self._fail_late(plan, payment)
        if plan.storm:
            await self._storm(plan, payment, plan.storm - plan.storm // 2 * plan.late_failure, storm)
        if plan.again and plan.request_id in self.failed_late:
            await self._again(plan, payment)
        if plan.items:
            await self._goods_received(plan)
        if plan.resend == "late":
            await self._submit(plan.request_id, body)

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

    async def _submit(self, request_id: str, body: bytes) -> None:
        async def attempt() -> httpx.Response | None:
            try:  # signed afresh on every attempt, as a merchant's retry would be
                response = await self.http.post(
                    "/v1/refund-requests", content=body, headers=self._signed(body)
                )
            except httpx.HTTPError:
                return None
            return None if response.status_code >= 500 else response

        response = await until(attempt, f"{request_id}: intake", self.step_timeout)
        if response.status_code not in (200, 202):
            self.notes.append(f"{request_id}: intake answered {response.status_code} {response.text[:200]}")

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
        return await self._settled_id(plan.request_id, plan.provider)

    async def _settled_id(self, request_id: str, provider: str) -> str:
        async def probe() -> str | None:
            status = await self.status(request_id)
            if status in SETTLED:
                return status
            await self._redeliver_now_and_then(provider)  # its PSP's word may be what it waits for
            return None

        return str(await until(probe, f"{request_id}: settling", self.step_timeout))

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

    # ---- the PSP is the truth: forged and replayed outcomes, dashboard refunds, fraud warnings -----

    async def _signal_direct(self, request_id: str, update: PspRefundUpdate) -> bool:
        """A psp_refund_update signal straight to Temporal, around the service: True when the
        refund's workflow took it (it was open), False when it was closed (or never started)."""
        handle = self.temporal.get_workflow_handle(workflow_id(request_id))

        async def attempt() -> bool | None:
            self.truth.direct_signals[request_id] += 1  # counted as sent, whatever Temporal answers
            try:
                await handle.signal(SIGNAL, update)
            except RPCError as err:
                if err.status is RPCStatusCode.NOT_FOUND:
                    return False
                return None  # Temporal is down (it is brought back): sent again
            return True

        return bool(await until(attempt, f"{request_id}: signal around the service", self.step_timeout))

    def _unproven_rows(self, request_id: str, psp_refund_id: str) -> int:
        with self.db.transaction() as session:
            return sum(
                entry.step == UNPROVEN_STEP and entry.detail.get("psp_refund_id") == psp_refund_id
                for entry in audit.trail(session, request_id)
            )

    async def _audited_unproven(self, request_id: str, psp_refund_id: str) -> None:
        """Wait (a while) for the refused outcome on the refund's trail; checks 13 and 14 judge it at
        the end, so a trail that never shows it is noted here and the refund goes on."""

        async def probe() -> bool | None:
            rows = await asyncio.to_thread(self._unproven_rows, request_id, psp_refund_id)
            return True if rows else None

        try:
            await until(probe, f"{request_id}: refused outcome on its trail", min(60, self.step_timeout))
        except Deadline as err:
            self.notes.append(str(err))

    async def _forge(self, plan: RefundPlan, psp_refund_id: str) -> None:
        """Six forged outcomes for the refund's PSP refund (forged_updates); each must change nothing
        and be written to its trail as psp_update_unproven."""
        rid = plan.request_id
        rng = random.Random(f"{self.seed}:{rid}:forge")
        others = [p.request_id for p in self.plans if p.request_id != rid] or ["chaos-nobody"]
        elsewhere = (late_failure_workflow_id(rid, psp_refund_id), workflow_id(rng.choice(others)))
        amount = Money(value=plan.booked, currency=CURRENCY)
        keys = self.stack.settings().decision_keys()
        taken = 0
        for update in forged_updates(rid, workflow_id(rid), psp_refund_id, amount, elsewhere, keys, rng):
            taken += await self._signal_direct(rid, update)
        if not taken:
            self.notes.append(f"{rid}: its workflow had closed: no forged outcome taken")
            return
        self.truth.forged[rid] += taken
        self.truth.forged_ids[rid] = psp_refund_id
        await self._audited_unproven(rid, psp_refund_id)

    async def _forge_while_confirming(self, plan: RefundPlan, payment: str) -> None:
        """Its PSP refund is held pending: forged outcomes reach the refund while it waits, then the
        PSP settles it as the plan says (in a finally: a refund is never left pending at the PSP)."""
        rid = plan.request_id
        try:

            async def confirming() -> str | None:
                status = await self.status(rid)
                return status if status == "awaiting_confirmation" or status in SETTLED else None

            status = await until(confirming, f"{rid}: awaiting confirmation", self.step_timeout)
            refunds = await asyncio.to_thread(self.psps.refunds_of, plan.provider, payment)
            pending = [r for r in refunds if r.status.lower() == "pending"]
            if status != "awaiting_confirmation" or not pending:
                self.notes.append(f"{rid}: {status}, {len(pending)} PSP refunds pending: nothing forged")
                return
            await self._forge(plan, pending[-1].psp_refund_id)
        finally:
            await asyncio.to_thread(self.psps.settle_held, plan.provider, payment, plan.behavior != "fails")

    async def _forge_open(self, plan: RefundPlan, payment: str) -> None:
        """Succeeded, its workflow open for the goods: forged outcomes (a failure above all)."""
        standing = [
            r for r in await asyncio.to_thread(self.psps.refunds_of, plan.provider, payment) if r.standing
        ]
        if not standing:
            self.notes.append(f"{plan.request_id}: succeeded, no standing PSP refund to forge outcomes for")
            return
        await self._forge(plan, standing[-1].psp_refund_id)

    async def _replay(self, plan: RefundPlan) -> None:
        """A proven signal out of the refund's own history, sent to the first other refund whose
        workflow is open (refused: its proof names this one) and to its own again (a duplicate)."""
        rid = plan.request_id

        async def genuine() -> PspRefundUpdate | None:
            try:
                found = await proven_signals(self.temporal, workflow_id(rid))
            except RPCError:
                return None
            if found:
                return found[0]
            await self.redeliver(plan.provider)  # its PSP's event is on its way
            return None

        try:
            update = await until(
                genuine, f"{rid}: a proven signal in its history", min(60, self.step_timeout)
            )
        except Deadline as err:  # reported; the refund goes on (its goods are still to come)
            self.notes.append(str(err))
            return
        rng = random.Random(f"{self.seed}:{rid}:replay")
        goods = [p.request_id for p in self.plans if p.items and p.request_id != rid]
        rest = [p.request_id for p in self.plans if not p.items and p.request_id != rid]
        rng.shuffle(goods)
        rng.shuffle(rest)
        for other in (goods + rest)[:40]:
            if await self._signal_direct(other, update):
                self.truth.replayed_into[rid] = (other, update.psp_refund_id)
                break
        if await self._signal_direct(rid, update):
            self.truth.replayed_own.add(rid)
        if rid in self.truth.replayed_into:
            await self._audited_unproven(self.truth.replayed_into[rid][0], update.psp_refund_id)
        else:
            self.notes.append(f"{rid}: no other refund open to replay its signal into")

    def _warning_seen(self, payment: str, warning_id: str) -> tuple[str, str] | None:
        """The refund a fraud warning on `payment` started (or would have), and what policy decided."""
        with self.db.transaction() as session:
            for entry in audit.entries_with_step(session, FRAUD_WARNING_STEP):
                named = entry.detail.get("payment_reference") == payment
                if named or (warning_id and entry.detail.get("warning") == warning_id):
                    return entry.request_id, entry.reason_code or ""
        return None

    async def _warn(self, plan: RefundPlan, payment: str) -> None:
        """An early fraud warning after the partial refund: its refund takes exactly what is left."""
        rid, known = plan.request_id, ""
        if plan.provider == "stripe":
            warning = await asyncio.to_thread(self.psps.stripe.early_fraud_warning, payment)
            known = str(warning.get("id", ""))
        else:
            await asyncio.to_thread(self.psps.adyen.fraud_notification, payment)

        async def taken() -> tuple[str, str] | None:
            found = await asyncio.to_thread(self._warning_seen, payment, known)
            if found is None:
                await self.redeliver(plan.provider)
            return found

        refund, decision = await until(taken, f"{rid}: early fraud warning taken", self.step_timeout)
        self.truth.warnings[rid] = refund
        left = plan.captured - plan.booked
        self.truth.extras.append(Extra(refund, plan.provider, payment, "warning", rid, left))
        if decision == "refund":
            await self._settled_id(refund, plan.provider)
        else:
            self.notes.append(f"{rid}: fraud warning decided {decision!r}, {left} left on the payment")

    async def _again(self, plan: RefundPlan, payment: str) -> None:
        """Once the late failure is reversed, a new request for the same amount on the payment."""
        rid = plan.request_id

        async def reversed_() -> str | None:
            status = await self.status(rid)
            return status if status in ("failed", "needs_attention") else None

        status = await until(reversed_, f"{rid}: late failure reversed", self.step_timeout)
        if status != "failed":
            self.notes.append(f"{rid}: {status} after its late failure: no second refund")
            return
        await self._another_refund(plan, payment, "again", plan.booked)

    # ---- the hostile tenant: another merchant's accounts sign events naming this refund --------

    async def _hostile(self, plan: RefundPlan, payment: str) -> None:
        """The tenant signs, on its own route, a dispute of the payment, a failure of the refund, a
        dashboard refund of the whole payment, a fraud warning and (Adyen) a larger capture; then
        the rest of the payment is refunded by its own merchant, which must still be possible."""
        rid = plan.request_id
        standing = [
            r for r in await asyncio.to_thread(self.psps.refunds_of, plan.provider, payment) if r.standing
        ]
        if not standing:
            self.notes.append(f"{rid}: succeeded, no standing PSP refund for the tenant to name")
            return
        psp_refund_id = standing[-1].psp_refund_id
        victim = Victim(rid, plan.provider, payment, psp_refund_id, plan.booked, plan.captured, CURRENCY)
        attack = Attack(victim)
        self.truth.hostile[rid] = attack
        for hostile in await asyncio.to_thread(self.tenant.deliveries, victim, self.psps.paypal):

            async def attempt(hostile: Hostile = hostile) -> httpx.Response | None:
                try:
                    response = await self.http.post(
                        hostile.path, content=hostile.body, headers=hostile.headers
                    )
                except httpx.HTTPError:
                    return None
                return None if response.status_code >= 500 else response

            response = await until(attempt, f"{rid}: tenant's {hostile.kind}", self.step_timeout)
            attack.sent.append((hostile, response.status_code))
        rest = plan.captured - plan.booked
        if 0 < rest < REVIEW_FROM:  # below review: its own merchant asks for the rest, unattended
            await self._another_refund(plan, payment, "rest", rest)

    async def _another_refund(self, plan: RefundPlan, payment: str, kind: str, amount: int) -> None:
        """A further request of the merchant's on the plan's payment (`<request id>-<kind>`), with no
        goods, settled; kept as an Extra for the checks."""
        request_id = f"{plan.request_id}-{kind}"
        body = plan.body(payment) | {
            "request_id": request_id,
            "order_id": f"order-{request_id}",
            "reason_code": "damaged",
            "amount": {"value": amount, "currency": CURRENCY},
        }
        body.pop("items", None)
        self.truth.extras.append(Extra(request_id, plan.provider, payment, kind, plan.request_id, amount))
        await self._submit(request_id, json.dumps(body, separators=(",", ":")).encode())
        await self._settled_id(request_id, plan.provider)

    async def drive_dashboard(self, dash: DashboardPlan, gate: asyncio.Semaphore) -> None:
        async with gate:
            try:
                await self._dashboard(dash)
            except Deadline as err:
                self.notes.append(f"{dash.key}: {err}")
            except Exception as err:  # a harness failure for this one: reported, the run goes on
                self.notes.append(f"{dash.key}: harness error {type(err).__name__}: {err}")

    def _row_status(self, request_id: str) -> str | None:
        with self.db.transaction() as session:
            row = session.get(RefundRow, request_id)
            return row.status if row is not None else None

    async def _row_is(self, provider: str, request_id: str, status: str) -> bool | None:
        if await asyncio.to_thread(self._row_status, request_id) == status:
            return True
        await self.redeliver(provider)
        return None

    async def _dashboard(self, dash: DashboardPlan) -> None:
        """A refund made in the PSP's dashboard, booked by the product; the PSP may fail it later
        (then it is reversed, and our own refund of the whole capture follows)."""
        payment = await asyncio.to_thread(self.psps.seed, dash.provider, dash.captured, CURRENCY, "ok")
        if dash.provider == "adyen":
            await until(lambda: self._announced(payment), f"{dash.key}: Adyen payment", self.step_timeout)
        record = DashboardRecord(dash, payment)
        self.truth.dashboards.append(record)
        if dash.provider == "stripe":
            attempts = 0

            async def made() -> str | None:
                nonlocal attempts
                # the payment is the dashboard refund's own: any refund on it is that one (a lost
                # answer made it); else try again, under a new key (Stripe keeps a 500 under its key)
                existing = await asyncio.to_thread(self.psps.stripe.stripe_refunds, payment)
                if existing:
                    return str(existing[0]["id"])
                attempts += 1
                try:
                    return await asyncio.to_thread(
                        self.psps.stripe_dashboard_refund, payment, dash.amount, f"{dash.key}-{attempts}"
                    )
                except httpx.HTTPError:
                    return None  # a PSP fault of the run's: the dashboard user tries again

            psp_id = str(await until(made, f"{dash.key}: dashboard refund", self.step_timeout))
        else:
            psp_id = await asyncio.to_thread(self.psps.adyen.dashboard_refund, payment, dash.amount)
        record.psp_refund_id = psp_id
        booked = external_request_id(dash.provider, psp_id)
        await until(
            lambda: self._row_is(dash.provider, booked, "succeeded"),
            f"{dash.key}: dashboard refund {psp_id} booked",
            self.step_timeout,
        )
        if not dash.fails_late:
            return
        if dash.provider == "adyen":
            await asyncio.to_thread(self.psps.adyen.fail_refund_late, psp_id)
            probe = lambda: self._notified(psp_id, "REFUND_FAILED")  # noqa: E731
        else:
            await asyncio.to_thread(self.psps.stripe.fail_stripe_refund_late, psp_id)
            probe = lambda: self._stripe_notified(psp_id, "refund.failed")  # noqa: E731
        record.failed_at_psp = True
        await until(probe, f"{dash.key}: late failure of {psp_id} delivered", self.step_timeout)
        await until(
            lambda: self._row_is(dash.provider, booked, "failed"),
            f"{dash.key}: dashboard refund {psp_id} reversed",
            self.step_timeout,
        )
        body = {
            "request_id": dash.after_id,
            "provider": dash.provider,
            "payment_reference": payment,
            "amount": {"value": dash.captured, "currency": CURRENCY},
            "reason_code": "damaged",
            "order_id": f"order-{dash.after_id}",
            "customer_id": f"cus-{dash.after_id}",
        }
        self.truth.extras.append(
            Extra(dash.after_id, dash.provider, payment, "after", dash.key, dash.captured)
        )
        await self._submit(dash.after_id, json.dumps(body, separators=(",", ":")).encode())
        await self._settled_id(dash.after_id, dash.provider)

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

    async def _redeliver_now_and_then(self, provider: str) -> None:
        """`redeliver`, at most every few seconds per PSP however many refunds wait on it."""
        now = time.monotonic()
        if now - self._redelivered_at.get(provider, 0.0) >= REDELIVER_SECONDS:
            self._redelivered_at[provider] = now
            await self.redeliver(provider)

    async def redeliver(self, provider: str) -> int:
        """Send again what the sandbox gave up on (it retries for seconds; a PSP retries for days),
        one pass per PSP at a time: many refunds waiting on it never send one event at once."""
        lock = self._redelivering.setdefault(provider, asyncio.Lock())
        sent = 0
        async with lock:
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
            for plan in self.plans:  # a held PSP refund made after the run settled its payment
                if plan.held and plan.request_id in self.payments:
                    payment, succeeds = self.payments[plan.request_id], plan.behavior != "fails"
                    await asyncio.to_thread(self.psps.settle_held, plan.provider, payment, succeeds)
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


def _truth_summary(truth: Truth, plans: list[RefundPlan], end: EndState) -> dict[str, Any]:
    """What the run did around the service (checks 13-17), for the summary line."""
    dashboards: dict[str, Counter[str]] = {}
    for record in truth.dashboards:
        fate = "failed" if record.failed_at_psp else "stood" if record.psp_refund_id else "not made"
        dashboards.setdefault(record.plan.provider, Counter())[fate] += 1
    extras: dict[str, Counter[str]] = {}
    for extra in truth.extras:
        row = end.rows.get(extra.request_id)
        extras.setdefault(extra.kind, Counter())[row.status if row else "none"] += 1
    provider = {p.request_id: p.provider for p in plans}
    return {
        "forged_signals": sum(truth.forged.values()),
        "forged_refunds": len(truth.forged),
        "replayed_signals": {"elsewhere": len(truth.replayed_into), "own": len(truth.replayed_own)},
        "dashboard_refunds": {psp: dict(fates) for psp, fates in sorted(dashboards.items())},
        "fraud_warnings": dict(Counter(provider[rid] for rid in truth.warnings)),
        "extra_refunds": {kind: dict(statuses) for kind, statuses in sorted(extras.items())},
        "hostile_tenant": {
            "refunds": dict(Counter(a.victim.provider for a in truth.hostile.values())),
            "events": dict(Counter(h.kind for a in truth.hostile.values() for h, _ in a.sent)),
            "answers": dict(Counter(str(code) for a in truth.hostile.values() for _, code in a.sent)),
        },
    }


def _bearer(reviewer: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {REVIEWERS[reviewer]}"}


async def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    since = datetime.now(UTC) - timedelta(minutes=1)
    data_dir = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="refunds-chaos-"))
    database_url, database_name = fresh_database(data_dir, args.sqlite)
    tenant = Tenant(data_dir / "tenant")
    stack = Stack(data_dir, database_url, workflow_sandbox=args.workflow_sandbox)
    tag = str(args.seed)  # ids from the seed too: every run has a fresh Temporal, database and sandbox
    plans = make_plans(args.seed, args.count, tag)
    dashboards = make_dashboards(args.seed, args.count, tag)
    schedule = make_schedule(args.seed, args.count, args.kills)
    kills: Counter[str] = Counter({name: 0 for name in KILLABLE})
    checks: list[Check] = []
    phases: dict[str, float] = {}  # when each phase ended
    try:
        stack.merchants_file = await asyncio.to_thread(tenant.start)
        await asyncio.to_thread(stack.start)
        phases["start"] = time.monotonic()
        psps = Psps(stack.sandbox_url, stack.service_url)
        db = Database.connect(database_url)
        try:
            async with httpx.AsyncClient(base_url=stack.service_url, timeout=30) as http:
                temporal = await connect(stack.settings())
                chaos_run = Run(
                    stack,
                    psps,
                    http,
                    plans,
                    args.concurrency,
                    args.step_timeout,
                    temporal,
                    args.seed,
                    db,
                    tenant,
                )
                gate = asyncio.Semaphore(args.concurrency)
                chaos = asyncio.create_task(chaos_run.chaos(schedule, kills))
                every = max(1, len(plans) // max(1, len(dashboards)))  # dashboards spread along the run
                after: dict[int, list[DashboardPlan]] = {}
                for k, dash in enumerate(dashboards):
                    after.setdefault(min(k * every + every // 2, len(plans) - 1), []).append(dash)
                drives = []
                for index, plan in enumerate(plans):
                    drives.append(chaos_run.drive(plan, gate))
                    drives += [chaos_run.drive_dashboard(d, gate) for d in after.get(index, [])]
                await asyncio.gather(*drives)
                phases["refunds"] = time.monotonic()
                chaos_run.done = True
                await chaos
                await asyncio.to_thread(psps.clear_faults)
                await chaos_run.quiesce(args.settle_timeout, args.retry_attention)
                phases["settle"] = time.monotonic()
                client = await connect(stack.settings())
                end = await read_end_state(
                    client, db, stack.settings(), plans, chaos_run.payments, chaos_run.truth
                )
                end.failed_late = set(chaos_run.failed_late)
                checks = await check_all(client, db, stack.settings(), psps, plans, end, since)
                phases["checks"] = time.monotonic()
                if args.retention:
                    checks.append(await chaos_run.forgotten(end, args.retention))
                    phases["retention"] = time.monotonic()
                checks.sort(key=lambda check: check.number)
        finally:
            db.dispose()
            psps.close()
    finally:
        await asyncio.to_thread(stack.stop)
        tenant.stop()
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
        **_truth_summary(chaos_run.truth, plans, end),
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
