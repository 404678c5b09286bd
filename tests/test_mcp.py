"""`refunds mcp`: an assistant, through the MCP SDK's own client over stdio and over streamable HTTP,
asks the running product for refunds as one API client: within its budget a refund goes ahead, over
it the refund is held for a human and the tool says so; it reads its budget and its own refunds. A key
that does not work stops a stdio start in one line; a client that goes away ends it quietly."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import httpx
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.fastmcp.exceptions import ToolError
from mcp.types import TextContent

from adapters.db import clients
from domain.clients import Client, new_key, parse_budget
from domain.requests import METADATA_VALUE_LENGTH
from sandbox.stripe.control import SandboxControl
from tests.conftest import Stack, repo_root
from tests.flows import FINAL, cli, cli_env, mcp_over_http, submit, wait_for_status
from tests.helpers import bearer, eventually, refund_body, unique
from workers.mcp_answers import outcome, refused, status_answer

TOOLS = ["request_refund", "refund_status", "my_budget", "my_recent_refunds"]


def _server(stack: Stack, key: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "workers.cli", "mcp"],
        env=cli_env(stack, REFUNDS_SERVICE_URL=stack.base_url, REFUNDS_CLIENT_KEY=key),
        cwd=str(repo_root()),
    )


def _assistant(stack: Stack) -> tuple[Client, str]:
    """A client for the stack's merchant with a 40.00 EUR daily budget, and its key."""
    client = Client(
        name=unique("assistant"),
        merchant_id=stack.settings.merchant_id,
        reasons=("damaged",),
        maxima=(parse_budget("EUR:50.00"),),
        budgets=(parse_budget("EUR:40.00"),),
    )
    key = new_key()
    with stack.database.transaction() as session:
        assert clients.create(session, client, key)
    return client, key


def _text(result: Any) -> str:
    assert not result.isError, result
    return "".join(part.text for part in result.content if isinstance(part, TextContent))


def _error(result: Any) -> str:
    """A tool error's text: what an assistant is told when nothing was refunded."""
    assert result.isError, result
    return "".join(part.text for part in result.content if isinstance(part, TextContent))


def _paid_back(said: str, request_id: str, amount: str) -> bool:
    """Taken without a human: being paid back, or already paid back, for the amount as money."""
    return said.startswith(("ACCEPTED", "REFUNDED")) and f"refund {request_id} of {amount}" in said


def _args(request_id: str, payment: str, amount: object) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "provider": "stripe",
        "payment_reference": payment,
        "amount_minor": amount,
        "currency": "EUR",
        "reason_code": "damaged",
        "order_id": f"order-{request_id}",
        "explanation": "the parcel arrived crushed; photo in ticket 4411 " * 20,  # past the bound: cut
    }


async def test_an_assistant_refunds_within_the_budget_and_is_held_over_it(
    stack: Stack, sandbox: SandboxControl
) -> None:
    client, key = _assistant(stack)
    async with stdio_client(_server(stack, key)) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        tools = (await session.list_tools()).tools
        assert [tool.name for tool in tools] == TOOLS
        description = tools[0].description or ""
        assert "will NOT approve" in description and "another merchant" in description

        small = unique("mcp-small")
        paid = sandbox.seed_stripe_payment(amount=10_000, currency="EUR")
        said = _text(await session.call_tool("request_refund", _args(small, paid, 2_500)))
        assert _paid_back(said, small, "25.00 EUR"), said
        again = _text(await session.call_tool("request_refund", _args(small, paid, 2_500)))
        assert again.startswith("ALREADY REQUESTED") and "25.00 EUR" in again, again  # read, not guessed
        said = _error(await session.call_tool("my_recent_refunds", {"limit": 0}))
        assert "limit" in said and "Nothing was done" in said, said

        big = unique("mcp-big")
        other = sandbox.seed_stripe_payment(amount=10_000, currency="EUR")
        said = _text(await session.call_tool("request_refund", _args(big, other, 2_000)))
        assert said.startswith("HELD FOR A HUMAN") and "client_budget" in said, said

        for amount in (True, "2500", 25.0):  # no amount the service would refuse reaches it
            said = _error(await session.call_tool("request_refund", _args(unique("mcp-type"), paid, amount)))
            assert "amount_minor" in said and "pydantic" not in said, said
        refused = {**_args(unique("mcp-scope"), paid, 100), "reason_code": "goodwill"}
        said = _error(await session.call_tool("request_refund", refused))
        assert said.startswith("REFUSED (reason_not_allowed)") and "Nothing was started" in said, said

        await wait_for_status(stack, small, FINAL)
        said = _text(await session.call_tool("refund_status", {"request_id": small}))
        assert said == f"Refund {small} of 25.00 EUR is succeeded.", said
        # the merchant's own refund is none of this client's business
        merchants = unique("mcp-merchants")
        await submit(
            stack,
            refund_body(merchants, sandbox.seed_stripe_payment(amount=5_000, currency="EUR"), amount=100),
        )
        said = _error(await session.call_tool("refund_status", {"request_id": merchants}))
        assert said == f"NOT FOUND: this client asked for no refund {merchants}.", said

    done = await wait_for_status(stack, small, FINAL)
    assert (done["status"], done["requested_by"]) == ("succeeded", f"client:{client.name}")
    asked = [(entry["step"], entry["actor"]) for entry in done["audit"] if entry["step"] == "requested"]
    assert asked == [("requested", f"client:{client.name}")]  # the client is the trail's requester
    validated = next(entry for entry in done["audit"] if entry["step"] == "validated")
    # the assistant's explanation, as far as the metadata bound keeps it, is there for a reviewer
    kept = _args(small, paid, 2_500)["explanation"][:METADATA_VALUE_LENGTH]
    assert validated["detail"]["explanation"] == kept
    shown = await cli(stack, "audit", small)  # and the trail people read shows it too
    assert f"explanation: {kept[:40]}" in shown.stdout, shown.stdout
    held = await wait_for_status(stack, big, {"awaiting_review"})
    assert "client_budget" in [reason["code"] for reason in held["risk"]["reasons"]]
    assert held["requested_by"] == f"client:{client.name}"
    assert sandbox.stripe_refunds(other) == []


async def test_a_key_revoked_while_the_server_runs_is_a_tool_error(stack: Stack) -> None:
    client, key = _assistant(stack)
    async with stdio_client(_server(stack, key)) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        with stack.database.transaction() as db:
            assert clients.revoke(db, client.name)
        result = await session.call_tool("request_refund", _args(unique("mcp-401"), "pi_x", 100))
    assert result.isError
    assert "client key is not accepted" in "".join(
        part.text for part in result.content if isinstance(part, TextContent)
    )


def _message(method: str, message_id: int | None = None, params: dict[str, Any] | None = None) -> bytes:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params or {}}
    if message_id is not None:
        message["id"] = message_id
    return json.dumps(message).encode() + b"\n"


INITIALIZE = {
    "protocolVersion": "2025-06-18",
    "capabilities": {},
    "clientInfo": {"name": "t", "version": "1"},
}


def _run_until_the_client_goes(stack: Stack, key: str, goes: str) -> tuple[int, str]:
    """`refunds mcp` over stdio whose client goes as `goes` says: its exit status and stderr."""
    server = _server(stack, key)
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(
            [server.command, *server.args],
            env=server.env,
            cwd=server.cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
        )
        assert process.stdin is not None and process.stdout is not None
        try:
            if goes != "before a word":
                process.stdin.write(_message("initialize", 1, INITIALIZE))
                process.stdin.flush()
                assert b'"id":1' in process.stdout.readline()
                process.stdin.write(_message("notifications/initialized"))
                process.stdin.flush()
            if goes == "mid-request":  # the answer to its last request meets a broken pipe
                process.stdout.close()
                with suppress(BrokenPipeError):
                    process.stdin.write(_message("tools/list", 2))
                    process.stdin.flush()
            process.stdin.close()
            code = process.wait(timeout=60)
        finally:
            process.kill()
            with suppress(BrokenPipeError):
                process.stdin.close()
        errors.seek(0)
        return code, errors.read().decode(errors="replace")


@pytest.mark.parametrize("goes", ["before a word", "after initializing", "mid-request"])
async def test_a_client_that_goes_away_ends_the_stdio_server_quietly(stack: Stack, goes: str) -> None:
    """Its end was a traceback, exit 1: stdout closed under the exit's flush, or a broken pipe."""
    _, key = _assistant(stack)
    code, errors = await asyncio.to_thread(_run_until_the_client_goes, stack, key, goes)
    assert (code, "Traceback" in errors) == (0, False), errors


@pytest.mark.parametrize(
    ("key", "says"),
    [
        ("rfc_not-a-key", "unknown or revoked"),
        ("not-a-key", "not a client key"),
        ("rfc_é", "not a client key"),
    ],
    ids=["unknown", "no key", "not ascii"],
)
async def test_a_key_that_does_not_work_stops_a_stdio_start_in_one_line(
    stack: Stack, key: str, says: str
) -> None:
    server = _server(stack, key)
    run = await asyncio.to_thread(
        subprocess.run,
        [server.command, *server.args],
        env=server.env,
        cwd=server.cwd,
        input="",
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = run.stderr.strip().splitlines()
    assert (run.returncode, run.stdout, len(lines)) == (2, "", 1), run.stderr
    assert lines[0].startswith("unauthorized: REFUNDS_CLIENT_KEY") and says in lines[0], lines


VIEW = {"amount": {"value": 1_050, "currency": "EUR"}}


@pytest.mark.parametrize(
    ("view", "start"),
    [
        ({"status": "refunding"}, "ACCEPTED: refund r1 of 10.50 EUR is being paid back"),
        ({"status": "awaiting_confirmation"}, "ACCEPTED: refund r1 of 10.50 EUR"),
        ({"status": "succeeded"}, "REFUNDED: refund r1 of 10.50 EUR was paid back"),
        ({"status": "awaiting_review"}, "HELD FOR A HUMAN: refund r1 of 10.50 EUR waits for a reviewer"),
        (
            {"status": "needs_attention", "failure_code": "payment_disputed", "failure_message": "held"},
            "WAITING FOR THE MERCHANT'S STAFF (payment_disputed: held)",
        ),
        ({"status": "validating"}, "RECEIVED: refund r1 of 10.50 EUR is still being checked"),
    ],
)
def test_a_refund_that_goes_on_is_said_as_it_stands(view: dict[str, Any], start: str) -> None:
    said = outcome("r1", VIEW | view, [])
    assert said.startswith(start), said
    assert outcome("r1", VIEW | view, [], again=True).startswith("ALREADY REQUESTED"), said


@pytest.mark.parametrize(
    ("view", "start"),
    [
        (
            {"status": "failed", "failure_code": "refund_exceeds_capture", "failure_message": "too much"},
            "FAILED (refund_exceeds_capture: too much): refund r1 of 10.50 EUR was not paid back",
        ),
        ({"status": "rejected", "failure_code": "review_rejected"}, "REJECTED (review_rejected)"),
        ({"status": "cancelled"}, "CANCELLED: refund r1"),
    ],
)
def test_a_refund_that_paid_nothing_back_is_a_tool_error(view: dict[str, Any], start: str) -> None:
    """Asked for and asked about alike: `refund_status` once answered `... is failed` as a success."""
    with pytest.raises(ToolError) as raised:
        outcome("r1", VIEW | view, [])
    assert str(raised.value).startswith(start), raised.value
    assert "nothing was refunded" in str(raised.value)
    with pytest.raises(ToolError) as asked_about:
        status_answer("r1", httpx.Response(200, json=VIEW | view))
    assert str(asked_about.value).startswith(start) and "nothing was refunded" in str(asked_about.value)


@pytest.mark.parametrize(
    ("status", "payload", "start"),
    [
        (409, {"error": {"code": "request_conflict", "message": "used"}}, "REFUSED (request_conflict)"),
        (403, {"error": {"code": "merchant_not_allowed", "message": "no"}}, "REFUSED (merchant_not_allowed)"),
        (422, {"error": {"code": "invalid_request", "message": "bad"}}, "INVALID (invalid_request)"),
        (503, {"error": {"code": "temporal_unavailable", "message": "down"}}, "the refund service answered"),
    ],
)
def test_a_request_the_service_did_not_take_is_a_tool_error(
    status: int, payload: dict[str, Any], start: str
) -> None:
    assert str(refused("r1", httpx.Response(status, json=payload))).startswith(start)


async def test_more_than_is_left_on_the_payment_is_said_to_have_failed(
    stack: Stack, sandbox: SandboxControl
) -> None:
    """Over the client's budget and over what the payment holds: the refund fails its validation
    at once, and the assistant is told it failed and why (before, "held for a human: tell the
    customer it is being reviewed")."""
    _, key = _assistant(stack)
    request_id = unique("mcp-over")
    small = sandbox.seed_stripe_payment(amount=1_000, currency="EUR")
    async with stdio_client(_server(stack, key)) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        said = _error(await session.call_tool("request_refund", _args(request_id, small, 4_500)))
    assert said.startswith("FAILED (refund_exceeds_capture"), said
    assert "nothing was refunded" in said and "45.00 EUR" in said, said
    assert sandbox.stripe_refunds(small) == []


@asynccontextmanager
async def _session(url: str, key: str) -> AsyncIterator[ClientSession]:
    async with (
        httpx.AsyncClient(headers=bearer(key), timeout=30) as http,
        streamable_http_client(url, http_client=http) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


async def test_over_http_each_caller_acts_with_its_own_key_and_reads_its_own_standing(
    stack: Stack, sandbox: SandboxControl
) -> None:
    first, first_key = _assistant(stack)
    _, second_key = _assistant(stack)
    async with mcp_over_http(stack) as url:
        async with httpx.AsyncClient() as http:  # no key, a key nobody made: refused before MCP
            for headers in ({}, bearer("rfc_not-a-key"), {"Authorization": "Basic cmZjXzE6"}):
                refused = await http.post(url, headers=headers, json={})
                assert refused.status_code == 401 and "Bearer" in refused.headers["www-authenticate"]
                assert refused.json()["error"]["code"] == "unauthorized"

        small, big = unique("mcp-http-small"), unique("mcp-http-big")
        async with _session(url, first_key) as session:
            assert [tool.name for tool in (await session.list_tools()).tools] == TOOLS
            paid = sandbox.seed_stripe_payment(amount=10_000, currency="EUR")
            said = _text(await session.call_tool("request_refund", _args(small, paid, 2_500)))
            assert _paid_back(said, small, "25.00 EUR"), said
            other = sandbox.seed_stripe_payment(amount=10_000, currency="EUR")
            said = _text(await session.call_tool("request_refund", _args(big, other, 2_000)))
            assert said.startswith("HELD FOR A HUMAN") and "client_budget" in said, said
            await wait_for_status(stack, small, {"succeeded"})
            said = _text(await session.call_tool("my_budget", {}))
            assert f"Client {first.name} acts for merchant {stack.settings.merchant_id}" in said, said
            assert (
                "- EUR: at most 50.00 per refund; 15.00 left of 40.00 (25.00 used by refunds of the "
                "last 24 hours, paid back or under way)" in said
            ), said

            async def recent() -> str:
                return _text(await session.call_tool("my_recent_refunds", {"limit": 10}))

            both = (f"{small}: 25.00 EUR succeeded", f"{big}: 20.00 EUR awaiting_review")
            await eventually(recent, lambda text: all(line in text for line in both))

        async with _session(url, second_key) as session:  # another client on the same server
            assert _text(await session.call_tool("my_recent_refunds", {})) == (
                "This client asked for no refunds lately."
            )
            said = _error(await session.call_tool("refund_status", {"request_id": small}))
            assert said == f"NOT FOUND: this client asked for no refund {small}.", said

        with stack.database.transaction() as db_session:
            assert clients.revoke(db_session, first.name)
        async with httpx.AsyncClient() as http:  # revoked a moment ago: refused on the next request
            refused = await http.post(url, headers=bearer(first_key), json={})
            assert refused.status_code == 401


REQUEST = {
    "request_id": "r-1",
    "provider": "stripe",
    "payment_reference": "pi_1",
    "amount_minor": 500,
    "currency": "EUR",
    "reason_code": "damaged",
    "order_id": "o-1",
}


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        ({**REQUEST, "explanation": "  "}, "explanation: say why the customer should be refunded"),
        (REQUEST, "explanation: Field required"),
        ({"request_id": "r-1"}, "provider: Field required; payment_reference: Field required"),
        ({**REQUEST, "amount_minor": "500", "explanation": "why"}, "amount_minor: Input should be a valid"),
    ],
    ids=["blank explanation", "no explanation", "every missing argument", "amount as text"],
)
async def test_arguments_a_request_cannot_be_made_of_are_refused_before_anything_is_asked(
    arguments: dict[str, Any], says: str
) -> None:
    """Before: a blank explanation went to the service and into the audit trail as the reason."""
    from workers.mcp_server import build_server

    server = build_server("http://127.0.0.1:9", lambda _ctx: "rfc_unused")  # nothing may be reached
    with pytest.raises(ToolError) as refused_here:
        await server.call_tool("request_refund", arguments)
    message = str(refused_here.value)
    assert message.startswith("INVALID (invalid_arguments): ") and says in message, message
    assert message.endswith("Nothing was done.") and "pydantic" not in message
