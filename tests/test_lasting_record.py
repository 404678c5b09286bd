"""The database is the lasting record: after Temporal's retention forgets a refund's workflow, reads
and a resent request are answered from the settled row, which nothing overwrites. And a PSP event is
signalled once, however often it is replayed, so no refund's history grows without bound."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.testing import ActivityEnvironment

from activities.ledger import LedgerActivities
from adapters.db import ledger, refunds
from adapters.db.engine import Database
from domain.clients import Client, parse_budget
from domain.contracts import FinishInput, LateFailureInput, PspRefundUpdate
from domain.money import Money
from domain.status import Provider, PspRefundStatus, RefundStatus
from sandbox.adyen.control import AdyenSandboxControl
from sandbox.stripe.control import SandboxControl
from tests.conftest import Stack, starter_for, worker_for
from tests.deliveries import post
from tests.flows import FINAL, known_adyen_payment, submit, wait_for_status
from tests.helpers import bearer, eventually, fresh_temporal, made_client, refund_body, signed_headers, unique


async def test_a_refund_temporal_forgot_is_answered_from_its_settled_row(
    stack: Stack, sandbox: SandboxControl
) -> None:
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    request_id = unique("retained")
    body = refund_body(request_id, payment, amount=1_200)
    async with fresh_temporal() as remembering:
        async with (
            starter_for(stack, client=remembering) as (settings, http),
            worker_for(stack, settings, client=remembering),
        ):
            assert (await _submit(http, body)).status_code == 202
            done = await eventually(lambda: _read(http, request_id), lambda v: v.get("status") in FINAL)
        assert done["status"] == "succeeded"

    async with fresh_temporal() as forgetful, starter_for(stack, client=forgetful) as (_, http):
        read = await _read(http, request_id)
        assert (read["status"], read["psp_refund_id"], read["amount"]) == (
            "succeeded",
            done["psp_refund_id"],
            {"value": 1_200, "currency": "EUR"},
        )
        resent = await _submit(http, body)
        assert (resent.status_code, resent.json()["status"]) == (200, "succeeded")
        changed = await _submit(http, refund_body(request_id, payment, amount=1_300))
        assert (changed.status_code, changed.json()["error"]["code"]) == (409, "request_conflict")
        started = [w.id async for w in forgetful.list_workflows()]
        assert started == []  # a resent settled request starts nothing

    with stack.database.transaction() as session:
        row = refunds.get(session, request_id)
        assert row is not None and (row.status, row.psp_refund_id) == ("succeeded", done["psp_refund_id"])
    assert len(sandbox.stripe_refunds(payment)) == 1


async def test_a_client_reads_its_own_refund_after_temporal_forgot_it(
    stack: Stack, sandbox: SandboxControl
) -> None:
    """The settled row keeps who asked: the client's own refund is still its own, another's still not."""
    mine = Client(
        name=unique("agent-kept"),
        merchant_id=stack.settings.merchant_id,
        reasons=("damaged",),
        maxima=(parse_budget("EUR:50.00"),),
        budgets=(parse_budget("EUR:100.00"),),
    )
    key = made_client(stack.database, mine)
    other = made_client(stack.database, Client(**{**mine.__dict__, "name": unique("agent-other")}))
    request_id = unique("agent-retained")
    body = refund_body(request_id, sandbox.seed_stripe_payment(amount=5_000, currency="EUR"), amount=900)
    async with (
        fresh_temporal() as remembering,
        starter_for(stack, client=remembering) as (settings, http),
        worker_for(stack, settings, client=remembering),
    ):
        sent = await http.post("/v1/refund-requests", content=body, headers=bearer(key))
        assert sent.status_code == 202, sent.text
        await eventually(lambda: _read(http, request_id), lambda v: v.get("status") in FINAL)

    async with fresh_temporal() as forgetful, starter_for(stack, client=forgetful) as (_, http):
        own = await http.get(f"/v1/refunds/{request_id}", headers=bearer(key))
        assert (own.status_code, own.json()["status"], own.json()["requested_by"]) == (
            200,
            "succeeded",
            f"client:{mine.name}",
        )
        theirs = await http.get(f"/v1/refunds/{request_id}", headers=bearer(other))
        assert theirs.status_code == 404


async def _submit(http: httpx.AsyncClient, body: bytes) -> httpx.Response:
    return await http.post("/v1/refund-requests", content=body, headers=signed_headers(body))


async def _read(http: httpx.AsyncClient, request_id: str) -> dict[str, Any]:
    response = await http.get(f"/v1/refunds/{request_id}")
    return dict(response.json()) if response.status_code == 200 else {}


async def test_a_resend_of_a_refund_settled_before_digests_were_kept_is_answered(
    stack: Stack, sandbox: SandboxControl
) -> None:
    """Rows settled before migration 0008 have no digest: what the row remembers decides."""
    payment = sandbox.seed_stripe_payment(amount=10_000, currency="EUR")
    request_id = unique("pre0008")
    body = refund_body(request_id, payment, amount=1_000)
    assert (await submit(stack, body)).status_code == 202
    await wait_for_status(stack, request_id, FINAL)
    with stack.database.transaction() as session:
        row = refunds.get(session, request_id)
        assert row is not None
        row.request_digest = None  # as the migration leaves an older row

    again = await submit(stack, body)
    other_order = await submit(stack, refund_body(request_id, payment, amount=1_000, order_id="order-x"))
    assert (again.status_code, again.json()["status"]) == (200, "succeeded")
    assert (other_order.status_code, other_order.json()["error"]["code"]) == (409, "request_conflict")


def _outcome(request_id: str, status: RefundStatus, psp_refund_id: str | None) -> FinishInput:
    return FinishInput(
        request_id=request_id,
        provider=Provider.STRIPE,
        payment_reference="pi_settled",
        order_id="order-1",
        status=status,
        amount=Money(value=500, currency="EUR"),
        psp_refund_id=psp_refund_id,
    )


def test_a_settled_row_is_never_overwritten(db: Database) -> None:
    request_id = unique("settled")
    ledger = LedgerActivities(db, "default")
    env = ActivityEnvironment()
    env.run(ledger.finish, _outcome(request_id, RefundStatus.SUCCEEDED, "re_1"))
    env.run(ledger.finish, _outcome(request_id, RefundStatus.FAILED, None))  # a second run
    with db.transaction() as session:
        row = refunds.get(session, request_id)
        assert row is not None and (row.status, row.psp_refund_id) == ("succeeded", "re_1")
        failed = refunds.SettledRefund(
            request_id=request_id,
            provider=Provider.STRIPE,
            payment_reference="pi_settled",
            order_id="order-1",
            status=RefundStatus.FAILED,
            amount=Money(value=500, currency="EUR"),
        )
        assert refunds.save_outcome(session, failed) is False


async def _signals(stack: Stack, request_id: str) -> int:
    handle = stack.client.get_workflow_handle(f"refund-{request_id}")
    kinds = [event.event_type async for event in handle.fetch_history_events()]
    return kinds.count(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)


async def test_a_replayed_adyen_notification_is_signalled_once_and_the_real_failure_still_lands(
    stack: Stack, adyen: AdyenSandboxControl
) -> None:
    reference = await known_adyen_payment(stack, adyen, 6_000)
    request_id = unique("replayed")
    item: dict[str, Any] = {"sku": unique("SKU"), "quantity": 1, "unit_amount": 1_000, "tax_amount": 0}
    body = refund_body(
        request_id,
        reference,
        amount=1_000,
        provider="adyen",
        reason_code="changed_mind",
        items=[{**item, "restock": True}],  # the workflow stays open for the goods
    )
    assert (await submit(stack, body)).status_code == 202
    view = await wait_for_status(stack, request_id, {"succeeded"})
    refund_id = view["psp_refund_id"]
    [genuine] = [n for n in adyen.notifications(refund_id) if n["event_code"] == "REFUND"]
    before = await _signals(stack, request_id)

    replay = json.dumps(genuine["payload"]).encode()
    answers = {(r.status_code, r.headers["Refunds-Signalled"]) for r in [await post(stack, "adyen", replay)]}
    for _ in range(30):
        response = await post(stack, "adyen", replay)
        answers.add((response.status_code, response.headers["Refunds-Signalled"]))
    assert answers == {(200, "0")}
    assert await _signals(stack, request_id) == before

    adyen.fail_refund_late(refund_id)
    failed = await wait_for_status(stack, request_id, {"failed"})
    assert [e["step"] for e in failed["audit"]].count("late_failure_reversed") == 1


def test_two_reversals_at_once_reverse_the_books_once(db: Database) -> None:
    """The refund's own workflow and the late-failure workflow may both reverse: the row lock lets one."""
    request_id = unique("twice")
    ledger_steps = LedgerActivities(db, "default")
    ActivityEnvironment().run(ledger_steps.finish, _outcome(request_id, RefundStatus.SUCCEEDED, "re_1"))
    late = LateFailureInput(
        provider=Provider.STRIPE,
        request_id=request_id,
        update=PspRefundUpdate(psp_refund_id="re_1", status=PspRefundStatus.FAILED),
    )
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: ActivityEnvironment().run(ledger_steps.reverse, late), range(4)))
    assert sorted(results) == [False, False, False, True]
    with db.transaction() as session:
        assert ledger.balances(session, request_id) == {}
        row = refunds.get(session, request_id)
        assert row is not None and row.status == "failed"
