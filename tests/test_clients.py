"""API clients: a key instead of the merchant's signature, reasons in scope, limits that hold a refund
for a human, and a daily budget that holds under concurrent requests."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlmodel import col

from adapters.db import clients
from adapters.db.engine import Database
from adapters.db.models import ClientReservationRow
from domain.clients import (
    BUDGET_WINDOW,
    Client,
    ClientError,
    new_key,
    parse_budget,
    parse_budgets,
    parse_maxima,
)
from domain.money import Money
from sandbox.stripe.control import SandboxControl
from tests.conftest import Stack, starter_for
from tests.flows import FINAL, assert_not_started, cli, post, wait_for_status
from tests.helpers import bearer, eventually, made_client, merchants_file, refund_body, signed_headers, unique


def _client(merchant: str, *, max_per_refund: str = "50.00", budget: str = "EUR:200.00") -> Client:
    return Client(
        name=unique("agent"),
        merchant_id=merchant,
        reasons=("damaged", "not_received"),
        maxima=parse_maxima([max_per_refund], (parse_budget(budget),)),
        budgets=(parse_budget(budget),),
    )


def _reserved(database: Database, name: str) -> list[ClientReservationRow]:
    with database.transaction() as session:
        query = select(ClientReservationRow).where(col(ClientReservationRow.client) == name)
        return list(session.execute(query).scalars())


# pure rules


def test_budgets_are_exact_minor_units_one_per_currency() -> None:
    assert parse_budget("eur:200.00") == Money(value=20_000, currency="EUR")
    assert parse_budget("JPY:5000") == Money(value=5_000, currency="JPY")
    for bad in ("EUR:200.001", "JPY:1.5", "XXX:1", "EUR:-1", "EUR:nan", "200"):
        with pytest.raises(ClientError):
            parse_budget(bad)
    with pytest.raises(ClientError):
        parse_budgets(["EUR:1", "EUR:2"])


def test_an_omitted_amount_counts_as_over_the_maximum() -> None:
    client = _client("m")
    assert client.over_max(None) is not None
    assert client.over_max(Money(value=5_000, currency="EUR")) is None
    assert client.over_max(Money(value=5_001, currency="EUR")) is not None


def test_a_maximum_is_per_currency_in_its_minor_units() -> None:
    budgets = parse_budgets(["EUR:200.00", "JPY:30000", "KWD:60.000"])
    maxima = parse_maxima(["50.00", "JPY:5000"], budgets)  # 50 in each currency not named
    assert maxima == (
        Money(value=5_000, currency="EUR"),
        Money(value=5_000, currency="JPY"),
        Money(value=50_000, currency="KWD"),
    )
    client = Client(name="c", merchant_id="m", reasons=("damaged",), maxima=maxima, budgets=budgets)
    assert client.over_max(Money(value=5_000, currency="JPY")) is None
    held = client.over_max(Money(value=5_001, currency="JPY"))
    assert held is not None and held.detail == "5001 JPY is over c's maximum of 5000 JPY"
    assert client.over_max(Money(value=100, currency="USD")) is not None  # no maximum there: a human
    for texts, problem in (
        (["JPY:5000"], "no maximum per refund in EUR"),
        (["50.00", "60.00"], "one maximum for every currency at most"),
        (["EUR:1", "EUR:2", "JPY:1", "KWD:1"], "one maximum per refund per currency"),
        (["50", "USD:10"], "no daily budget in USD"),
        (["50.5"], "more decimals than JPY has"),
    ):
        with pytest.raises(ClientError, match=problem):
            parse_maxima(texts, budgets)


# the database: keys hashed, reservations once


def test_a_key_is_kept_hashed_and_revoked_for_good(db: Database) -> None:
    client = _client("m")
    key = made_client(db, client)
    with db.transaction() as session:
        assert clients.by_key(session, key) == client
        assert clients.by_key(session, key + "x") is None
        listed = [entry for entry in clients.listing(session) if entry.client.name == client.name]
        assert listed[0].revoked_at is None
        assert clients.revoke(session, client.name)
    with db.transaction() as session:
        assert clients.by_key(session, key) is None
        assert not clients.revoke(session, client.name)
        assert not clients.create(session, client, new_key())  # a revoked name is not reused


def test_a_rotated_key_keeps_the_old_one_only_until_its_deadline(db: Database) -> None:
    client = _client("m")
    first = made_client(db, client)
    now = datetime.now(UTC)
    second, third = new_key(), new_key()
    with db.transaction() as session:
        assert clients.rotate(session, client.name, second, now + timedelta(hours=1))
    with db.transaction() as session:
        assert clients.by_key(session, second) == client
        assert clients.by_key(session, first, now + timedelta(minutes=59)) == client
        assert clients.by_key(session, first, now + timedelta(minutes=61)) is None
        again = clients.rotate(session, client.name, third, now)  # the key before last stops now
        assert again is not None and again.cut_short is not None
        assert abs(again.cut_short.replace(tzinfo=UTC) - (now + timedelta(hours=1))) < timedelta(seconds=1)
    with db.transaction() as session:
        assert clients.by_key(session, first) is None
        assert clients.by_key(session, second) is None
        assert clients.by_key(session, third) == client
        assert clients.revoke(session, client.name)
        assert not clients.rotate(session, client.name, new_key(), now)  # revoked for good
    with db.transaction() as session:
        assert clients.by_key(session, third) is None


def test_budget_reserves_once_per_refund_and_gives_back_once(db: Database) -> None:
    client = _client("m", budget="EUR:100.00")
    made_client(db, client)
    now = datetime.now(UTC)
    sixty = Money(value=6_000, currency="EUR")
    with db.transaction() as session:
        first = clients.reserve(session, client, "r1", sixty, now)
        again = clients.reserve(session, client, "r1", sixty, now)
        over = clients.reserve(session, client, "r2", sixty, now)
        usd = clients.reserve(session, client, "r3", Money(value=100, currency="USD"), now)
    assert (first.held, first.fresh) == (None, True)
    assert (again.held, again.fresh) == (None, False)
    assert over.held is not None and over.held.code == "client_budget"
    assert usd.held is not None and "no daily budget in USD" in usd.held.detail
    with db.transaction() as session:
        assert clients.release(session, "r1")
        assert not clients.release(session, "r1")
        assert clients.reserve(session, client, "r2", sixty, now).held is None
    # the window rolls: what was reserved 24 hours ago no longer counts
    with db.transaction() as session:
        assert clients.reserve(session, client, "r4", sixty, now + BUDGET_WINDOW).held is None


# the service


async def test_a_client_refunds_for_its_merchant_and_is_shown_as_the_requester(
    stack: Stack, sandbox: SandboxControl
) -> None:
    client = _client(stack.settings.merchant_id)
    key = made_client(stack.database, client)
    payment = sandbox.seed_stripe_payment(amount=10_000, currency="EUR")
    request_id = unique("agent-req")
    status, payload = await post(stack, refund_body(request_id, payment, amount=2_500), bearer(key))
    assert status == 202, payload
    view = await wait_for_status(stack, request_id, FINAL)
    assert view["status"] == "succeeded", view
    assert view["requested_by"] == f"client:{client.name}"
    assert len(sandbox.stripe_refunds(payment)) == 1
    assert [(r.amount, r.state) for r in _reserved(stack.database, client.name)] == [(2_500, "reserved")]
    # the same request again: the same refund, nothing reserved twice
    status, payload = await post(stack, refund_body(request_id, payment, amount=2_500), bearer(key))
    assert status == 200, payload
    assert len(_reserved(stack.database, client.name)) == 1
    # it reads back its own refund, without the trail of who decided; another client cannot
    own = await stack.http.get(f"/v1/refunds/{request_id}", headers=bearer(key))
    other = made_client(stack.database, _client(stack.settings.merchant_id))
    foreign = await stack.http.get(f"/v1/refunds/{request_id}", headers=bearer(other))
    assert (own.status_code, own.json()["status"], own.json()["audit"]) == (200, "succeeded", [])
    assert (foreign.status_code, foreign.json()["error"]["code"]) == (404, "not_found")


async def test_a_client_reads_what_is_left_of_its_budget_and_its_own_recent_refunds(
    stack: Stack, sandbox: SandboxControl
) -> None:
    client = _client(stack.settings.merchant_id)
    key = made_client(stack.database, client)
    within, over, merchants = unique("agent-own"), unique("agent-own-over"), unique("merchant-own")
    payment = sandbox.seed_stripe_payment(amount=20_000, currency="EUR")
    # the one held for a human first: still open, it must not hide the newer one that finished
    assert (await post(stack, refund_body(over, payment, amount=6_000), bearer(key)))[0] == 202
    assert (await post(stack, refund_body(within, payment, amount=2_500), bearer(key)))[0] == 202
    body = refund_body(merchants, payment, amount=100)
    assert (await post(stack, body, signed_headers(body)))[0] == 202  # the merchant's, not the client's
    await wait_for_status(stack, within, {"succeeded"})
    await wait_for_status(stack, over, {"awaiting_review"})

    standing = (await stack.http.get("/v1/client", headers=bearer(key))).json()
    assert (standing["name"], standing["reasons"]) == (client.name, ["damaged", "not_received"])
    assert standing["budgets"] == [
        {
            "max_per_refund": {"value": 5_000, "currency": "EUR"},
            "daily": {"value": 20_000, "currency": "EUR"},
            "reserved": {"value": 2_500, "currency": "EUR"},  # the held one reserved nothing
            "left": {"value": 17_500, "currency": "EUR"},
        }
    ]

    async def listed() -> dict[str, str]:
        answer = await stack.http.get("/v1/client/refunds", headers=bearer(key))
        return {refund["request_id"]: refund["status"] for refund in answer.json()["refunds"]}

    mine = await eventually(listed, lambda seen: seen.get(within) == "succeeded" and over in seen)
    assert set(mine) == {within, over} and mine[over] == "awaiting_review"
    newest = await stack.http.get("/v1/client/refunds", params={"limit": 1}, headers=bearer(key))
    assert [refund["request_id"] for refund in newest.json()["refunds"]] == [within]
    other = made_client(stack.database, _client(stack.settings.merchant_id))
    theirs = await stack.http.get("/v1/client/refunds", headers=bearer(other))
    assert theirs.json() == {"refunds": []}
    for headers in ({}, {"Authorization": "Bearer alice-token"}, bearer("rfc_not-a-key")):
        refused = await stack.http.get("/v1/client", headers=headers)
        assert (refused.status_code, refused.json()["error"]["code"]) == (401, "unauthorized")


async def test_another_merchants_client_refunds_in_that_merchants_id_space(
    stack: Stack, tmp_path: Path
) -> None:
    """A client of globex: its refund is globex's (`globex~<id>`), its list shows its own ids; the
    default merchant's client with the same request id starts its own refund, not a conflict."""
    globex = _client("globex")
    globex_key = made_client(stack.database, globex)
    ours_key = made_client(stack.database, _client(stack.settings.merchant_id))
    request_id = unique("agent-globex")
    body = refund_body(request_id, "pi_not_called", amount=1_000)
    starter = starter_for(stack, merchants_file=merchants_file(tmp_path, "http://127.0.0.1:9"))
    async with starter as (_, http):  # no worker polls this starter's queue: nothing runs
        started = await http.post("/v1/refund-requests", content=body, headers=bearer(globex_key))
        ours = await http.post("/v1/refund-requests", content=body, headers=bearer(ours_key))
        try:
            assert started.json()["workflow_id"] == f"refund-globex~{request_id}", started.text
            assert ours.json()["workflow_id"] == f"refund-{request_id}", ours.text

            async def listed() -> list[str]:
                answer = await http.get("/v1/client/refunds", headers=bearer(globex_key))
                return [refund["request_id"] for refund in answer.json()["refunds"]]

            assert await eventually(listed, bool) == [request_id]
        finally:
            for answer in (started, ours):
                await stack.client.get_workflow_handle(answer.json()["workflow_id"]).terminate("test")
    assert [row.request_id for row in _reserved(stack.database, globex.name)] == [f"globex~{request_id}"]


async def test_out_of_scope_unknown_and_revoked_keys_start_nothing(stack: Stack) -> None:
    client = _client(stack.settings.merchant_id)
    key = made_client(stack.database, client)
    request_id = unique("agent-scope")
    body = refund_body(request_id, "pi_any", amount=100, reason_code="goodwill")
    status, payload = await post(stack, body, bearer(key))
    assert (status, payload["error"]["code"]) == (403, "reason_not_allowed")
    body = refund_body(request_id, "pi_any", amount=100)
    status, payload = await post(stack, body, {**bearer(key), "Refund-Merchant": "someone-else"})
    assert (status, payload["error"]["code"]) == (403, "merchant_not_allowed")
    status, payload = await post(stack, body, bearer("rfc_not-a-key"))
    assert payload == {"error": {"code": "unauthorized", "message": "unknown or revoked client key"}}
    assert status == 401
    with stack.database.transaction() as session:
        clients.revoke(session, client.name)
    status, payload = await post(stack, body, bearer(key))
    assert (status, payload["error"]["code"]) == (401, "unauthorized")
    await assert_not_started(stack, request_id)
    assert _reserved(stack.database, client.name) == []


@pytest.mark.parametrize("amount", [5_001, None])
async def test_over_the_maximum_or_of_unknown_size_is_held_for_a_human(
    stack: Stack, sandbox: SandboxControl, amount: int | None
) -> None:
    client = _client(stack.settings.merchant_id)
    key = made_client(stack.database, client)
    payment = sandbox.seed_stripe_payment(amount=10_000, currency="EUR")
    request_id = unique("agent-max")
    status, payload = await post(stack, refund_body(request_id, payment, amount=amount), bearer(key))
    assert status == 202, payload
    view = await wait_for_status(stack, request_id, {"awaiting_review"})
    assert view["requested_by"] == f"client:{client.name}"
    assert "client_limit" in [reason["code"] for reason in view["risk"]["reasons"]]
    assert sandbox.stripe_refunds(payment) == []
    assert _reserved(stack.database, client.name) == []  # a human's decision spends no client budget
    metrics = (await stack.http.get("/metrics")).text
    assert f'refunds_client_requests_total{{client="{client.name}",outcome="client_limit"}} 1.0' in metrics
    shown = await cli(stack, "status", request_id)
    assert f"requested by client:{client.name}" in shown.stdout, shown.stdout + shown.stderr
    queue = await cli(stack, "pending", "--json")
    row = next(row for row in json.loads(queue.stdout) if row["request_id"] == request_id)
    assert "client_limit" in row["reasons"] and row["requested_by"] == f"client:{client.name}", row
    assert isinstance(row["risk_score"], int) and row["approvals"]["given"] == 0, row  # typed for scripts


async def test_a_request_sent_again_says_only_what_its_own_client_may_know(
    stack: Stack, sandbox: SandboxControl
) -> None:
    """Before: the same body from another client answered 200 with the refund's status (a refund it
    never asked for), and the asking client's own held refund, sent again, was said to wait for
    "the merchant's own risk rules" where its 202 had named its own daily limit."""
    asker, other = _client(stack.settings.merchant_id), _client(stack.settings.merchant_id)
    asker_key, other_key = made_client(stack.database, asker), made_client(stack.database, other)
    payment = sandbox.seed_stripe_payment(amount=10_000, currency="EUR")
    body = refund_body(unique("agent-again"), payment, amount=9_000)  # over its 50.00 maximum
    first = await post(stack, body, bearer(asker_key))
    assert first[0] == 202 and [h["code"] for h in first[1]["held_for"]] == ["client_limit"], first
    await wait_for_status(stack, first[1]["request_id"], {"awaiting_review"})
    again = await post(stack, body, bearer(asker_key))
    assert again[0] == 200 and again[1]["held_for"] == first[1]["held_for"], again
    foreign = await post(stack, body, bearer(other_key))
    assert foreign[0] == 409 and foreign[1]["error"]["code"] == "request_conflict", foreign
    assert "awaiting_review" not in json.dumps(foreign[1])


async def test_a_refund_that_fails_gives_its_budget_back(stack: Stack) -> None:
    client = _client(stack.settings.merchant_id)
    key = made_client(stack.database, client)
    request_id = unique("agent-fail")
    status, payload = await post(
        stack, refund_body(request_id, "pi_unknown_agent", amount=1_000), bearer(key)
    )
    assert status == 202, payload
    view = await wait_for_status(stack, request_id, FINAL)
    assert view["status"] == "failed"
    assert [row.state for row in _reserved(stack.database, client.name)] == ["released"]


async def test_concurrent_requests_never_spend_more_than_the_daily_budget(
    stack: Stack, sandbox: SandboxControl
) -> None:
    """24 requests of 20.00 EUR at once against 200.00 EUR: ten go through, fourteen wait for a human."""
    client = _client(stack.settings.merchant_id, budget="EUR:200.00")
    key = made_client(stack.database, client)
    requests = [
        (unique("agent-burst"), sandbox.seed_stripe_payment(amount=5_000, currency="EUR")) for _ in range(24)
    ]
    answers = await asyncio.gather(
        *(post(stack, refund_body(rid, payment, amount=2_000), bearer(key)) for rid, payment in requests)
    )
    assert [status for status, _ in answers] == [202] * 24, answers
    reserved = _reserved(stack.database, client.name)
    assert sum(row.amount for row in reserved) <= 20_000
    assert len(reserved) == 10
    with stack.database.transaction() as session:
        since = datetime.now(UTC) - timedelta(hours=24)
        assert clients.reserved_total(session, client.name, "EUR", since) == 20_000
    views = await asyncio.gather(
        *(wait_for_status(stack, rid, {"succeeded", "awaiting_review"}, timeout=90) for rid, _ in requests)
    )
    held = [
        v for v in views if "client_budget" in [r["code"] for r in (v.get("risk") or {}).get("reasons", [])]
    ]
    approved = [v for v in views if v["status"] == "succeeded"]
    assert len(held) == 14 and all(v["status"] == "awaiting_review" for v in held)
    assert sum(v["amount"]["value"] for v in approved) == 20_000
    assert {v["requested_by"] for v in views} == {f"client:{client.name}"}


async def test_the_cli_creates_lists_rotates_and_revokes_clients_showing_each_key_once(stack: Stack) -> None:
    name = unique("helpdesk")
    made = await cli(
        stack,
        *("client", "create", name, "--reasons", "damaged,not_received", "--max-per-refund", "50.00"),
        *("--daily-budget", "EUR:200.00", "--daily-budget", "USD:100"),
    )
    assert made.returncode == 0, made.stdout + made.stderr
    key = made.stdout.split()[-1]
    assert key.startswith("rfc_")
    with stack.database.transaction() as session:
        found = clients.by_key(session, key)
    assert found is not None and found.merchant_id == stack.settings.merchant_id
    assert [str(b.value) + b.currency for b in found.budgets] == ["20000EUR", "10000USD"]
    listed = await cli(stack, "client", "list")
    assert name in listed.stdout and key not in listed.stdout and "EUR:200.00 (200.00)" in listed.stdout
    bad = await cli(
        stack,
        "client",
        "create",
        unique("x"),
        "--reasons",
        "damaged",
        "--max-per-refund",
        "5",
        "--daily-budget",
        "EUR:1.001",
    )
    assert bad.returncode == 2 and "invalid_client" in bad.stderr
    rotated = await cli(stack, "client", "rotate", name, "--keep-old-key", "1")
    assert rotated.returncode == 0 and "old key works until" in rotated.stdout, rotated.stdout
    new = rotated.stdout.split()[-1]
    for works in (key, new):  # both, for the hour the client has to switch
        answer = await stack.http.get("/v1/client", headers=bearer(works))
        assert answer.status_code == 200 and answer.json()["name"] == name
    rotated = await cli(stack, "client", "rotate", name)
    assert "old key stopped working now" in rotated.stdout, rotated.stdout
    assert "the key before it, due to work until" in rotated.stdout  # the first key, within its hour
    for stopped in (key, new):
        assert (await stack.http.get("/v1/client", headers=bearer(stopped))).status_code == 401
    assert (await stack.http.get("/v1/client", headers=bearer(rotated.stdout.split()[-1]))).status_code == 200
    assert (await cli(stack, "client", "revoke", name)).returncode == 0
    again = await cli(stack, "client", "revoke", name)
    assert again.returncode == 1 and "not_found" in again.stderr
