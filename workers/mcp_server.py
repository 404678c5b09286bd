"""`refunds mcp`: an AI assistant asks for refunds as ONE API client, over the Model Context Protocol.

Every tool call is an HTTP request to the product's service (`Settings.service_base`) with a
client's key as `Authorization: Bearer`, exactly as any other API client's. Over stdio the key is
the process's (`REFUNDS_CLIENT_KEY`); over streamable HTTP each caller brings its own, checked with
the service before the protocol sees the request (`workers/mcp_http.py`). The server never touches
the database or Temporal, so the client's scope, maximum per refund, daily budget and holds apply
as they do over HTTP: this process cannot grant an assistant anything its key does not.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import quote

import anyio
import httpx
from mcp.server.fastmcp import Context, FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from pydantic import Field, ValidationError

from domain.clients import KEY_PREFIX
from domain.requests import METADATA_VALUE_LENGTH
from domain.status import RefundStatus
from workers.mcp_answers import (
    EARLY,
    budget_answer,
    invalid_arguments,
    outcome,
    payload,
    recent_answer,
    refused,
    status_answer,
)

KEY_VARIABLE = "REFUNDS_CLIENT_KEY"
EXPLANATION_KEY = "explanation"  # the request's metadata key: kept with the request, in its audit trail
TIMEOUT_SECONDS = 30.0
SETTLE_SECONDS = 10.0  # how long request_refund waits for the refund to pass its first checks
SETTLE_POLL_SECONDS = 0.2

INSTRUCTIONS = (
    "You act as one API client of a refund service, for one merchant only. You can ask for a "
    "refund; you cannot approve one, cannot exceed your client's limits without a human deciding, "
    "and cannot act for another merchant. A refund over your maximum per refund or your daily "
    "budget is started but held for a human reviewer: say so to the customer, never retry it to get "
    "around the hold. Amounts are in minor units when you send them (2500 is 25.00) and read as "
    "money in every answer. A refund that was refused, invalid, failed or rejected comes back as a "
    "tool error: nothing was refunded, never tell the customer otherwise."
)

REQUEST_REFUND = (
    "Ask for a refund of a payment, for this client's merchant. It WILL start the refund when the "
    "reason is one this client may use; within the client's maximum per refund and daily budget it "
    "is refunded without a human (unless the product's risk rules send it to review), over them it "
    "is started but HELD for a human reviewer, and the answer says why. It will NOT approve a "
    "refund (only a human reviewer can), will NOT exceed the client's limits without a human, and "
    "will NOT act for another merchant. The answer says what became of the refund once it was "
    "checked: ACCEPTED (being paid back), REFUNDED, HELD FOR A HUMAN (and why), WAITING FOR THE "
    "MERCHANT'S STAFF (and why), or RECEIVED (still being checked); a refusal or failure is a tool "
    "error saying why. The same request_id again is the same refund, never a second one. Your "
    "explanation is kept with the request in its audit trail: write why the customer should be "
    "refunded, as a reviewer would want to read it."
)


REFUND_STATUS = (
    "Read one refund this client asked for: its status (received, validating, scoring, "
    "awaiting_review, refunding, awaiting_confirmation, needs_attention, succeeded, failed, "
    "rejected, cancelled), its amount as money and, when it failed, why. It will NOT show refunds other "
    "clients or the merchant asked for, nor who reviewed it; it changes nothing."
)


MY_BUDGET = (
    "Read this client's own limits: the reasons it may ask for, the maximum per refund above which "
    "a human decides, and what is left of its daily budget in each currency (rolling 24 hours). "
    "Ask before a refund you expect to be large. It changes nothing and shows no other client's."
)

MY_RECENT_REFUNDS = (
    "List the refunds this client asked for lately, newest first, each with its status as last "
    "published (it may trail the refund by a moment: refund_status reads one exactly). It will "
    "NOT list refunds other clients or the merchant asked for; it changes nothing."
)


class RefundsClient:
    """The HTTP side: one key, one service."""

    def __init__(self, service_base: str, key: str) -> None:
        self._base = service_base
        self._headers = {"Authorization": f"Bearer {key}", "content-type": "application/json"}

    async def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return await self._send("POST", path, content=json.dumps(body, separators=(",", ":")))

    async def get(self, path: str) -> httpx.Response:
        return await self._send("GET", path)

    async def _send(self, method: str, path: str, content: str | None = None) -> httpx.Response:
        async with httpx.AsyncClient(
            base_url=self._base, headers=self._headers, timeout=TIMEOUT_SECONDS
        ) as http:
            try:
                return await http.request(method, path, content=content)
            except httpx.HTTPError as err:
                raise ToolError(
                    f"the refund service at {self._base} cannot be reached ({err}): the operator who "
                    "set up this assistant must set REFUNDS_SERVICE_URL to where it runs"
                ) from err


KeyOf = Callable[[Context[Any, Any, Any]], str]  # the client key a tool call acts with
KEY_CHECK_SECONDS = 5.0  # how long a stdio start waits to hear whether the service knows its key


def key_shaped(key: str) -> bool:
    """Whether text could be a client key at all: `rfc_` and printable ASCII, as `new_key` makes them
    (an HTTP header carries nothing else)."""
    return key.startswith(KEY_PREFIX) and key.isascii() and key.isprintable() and " " not in key


def key_refusal(service_base: str, key: str) -> str | None:
    """Why `refunds mcp` over stdio must not start with this key: it is no client key, or the service
    says it knows none such. A service that does not answer now is no reason: it may answer by the
    first tool call, and each call says so if it does not."""
    if not key_shaped(key):
        return f"{KEY_VARIABLE} is not a client key (rfc_..., from `refunds client create`)"
    try:
        answer = httpx.get(
            f"{service_base}/v1/client", headers={"Authorization": f"Bearer {key}"}, timeout=KEY_CHECK_SECONDS
        )
    except httpx.HTTPError:
        return None
    if answer.status_code == 401:
        return f"{KEY_VARIABLE} is unknown or revoked at {service_base}: ask an operator for a working key"
    return None


def serve_stdio(server: FastMCP) -> None:
    """Serve one client over stdin and stdout until it goes. A client that leaves closes stdin (the
    server ends as it reads the end) or its end of stdout (the next answer meets a broken pipe):
    either is the end of the session, not an error."""
    try:
        anyio.run(server.run_stdio_async)
    except* (BrokenPipeError, ConnectionResetError, anyio.BrokenResourceError, anyio.ClosedResourceError):
        pass


class RefundsMCP(FastMCP):
    """The SDK's server, with tool errors said plainly: the tools' own refusals as they wrote them
    (not prefixed with the SDK's "Error executing tool"), and argument checks without pydantic's
    links."""

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> Any:
        try:
            return await super().call_tool(name, arguments)
        except ToolError as err:
            cause = err.__cause__
            if isinstance(cause, ToolError):
                raise cause from None
            if isinstance(cause, ValidationError):
                raise invalid_arguments(cause) from None
            raise


async def settled(refunds: RefundsClient, request_id: str, taken: dict[str, Any]) -> dict[str, Any]:
    """The refund once it is past its first checks (validated, scored), read from the service (the
    intake's own answer names no amount): what the answer is about. A refund still being checked
    after a few seconds is said to be so; one that cannot be read now is told from the intake's
    answer."""
    view = {"status": taken.get("status", RefundStatus.RECEIVED.value), **taken}
    deadline = anyio.current_time() + SETTLE_SECONDS
    while True:
        response = await refunds.get(f"/v1/refunds/{quote(request_id, safe='')}")
        if response.status_code == 200:
            view = response.json()
        if RefundStatus(view["status"]) not in EARLY or anyio.current_time() >= deadline:
            return view
        await anyio.sleep(SETTLE_POLL_SECONDS)


def build_server(service_base: str, key_of: KeyOf, host: str = "127.0.0.1") -> FastMCP:
    """The tools, acting with the key `key_of` gives for each call. `host` is where streamable
    HTTP listens (the SDK guards a loopback address against DNS rebinding)."""
    server = RefundsMCP(
        "refunds",
        instructions=INSTRUCTIONS,
        host=host,
        stateless_http=True,
        json_response=True,
        log_level="WARNING",  # stderr says what went wrong, not every request
    )

    def client(ctx: Context[Any, Any, Any]) -> RefundsClient:
        return RefundsClient(service_base, key_of(ctx))

    @server.tool(name="request_refund", description=REQUEST_REFUND)
    async def request_refund(
        request_id: Annotated[
            str, Field(description="Your own id for this refund: the same id again is the same refund")
        ],
        provider: Annotated[str, Field(description="The payment's PSP: stripe, adyen or paypal")],
        payment_reference: Annotated[str, Field(description="The PSP's id of the payment to refund")],
        amount_minor: Annotated[
            int,
            Field(
                strict=True,  # as the service takes it: true or "2500" is no amount
                gt=0,
                description="The amount in minor units of the currency (cents): 2500 is 25.00",
            ),
        ],
        currency: Annotated[str, Field(description="ISO 4217 code, e.g. EUR")],
        reason_code: Annotated[str, Field(description="One of the reasons this client may ask for")],
        order_id: Annotated[str, Field(description="The merchant's order the payment was for")],
        explanation: Annotated[
            str,
            Field(
                description="Why the customer should be refunded, for the audit trail and a reviewer "
                f"(at most {METADATA_VALUE_LENGTH} characters are kept)"
            ),
        ],
        ctx: Context[Any, Any, Any],
    ) -> str:
        if not explanation.strip():  # the audit trail and a reviewer need the why, not a blank
            raise ToolError(
                "INVALID (invalid_arguments): explanation: say why the customer should be refunded. "
                "Nothing was done."
            )
        body = {
            "request_id": request_id,
            "provider": provider,
            "payment_reference": payment_reference,
            "amount": {"value": amount_minor, "currency": currency.upper()},
            "reason_code": reason_code,
            "order_id": order_id,
            "metadata": {EXPLANATION_KEY: explanation[:METADATA_VALUE_LENGTH]},
        }
        refunds = client(ctx)
        response = await refunds.post("/v1/refund-requests", body)
        if response.status_code not in (200, 202):
            raise refused(request_id, response)
        taken = payload(response)
        view = await settled(refunds, request_id, taken)
        return outcome(request_id, view, list(taken.get("held_for") or []), again=response.status_code == 200)

    @server.tool(name="refund_status", description=REFUND_STATUS)
    async def refund_status(
        request_id: Annotated[str, Field(description="The request_id you gave when asking for it")],
        ctx: Context[Any, Any, Any],
    ) -> str:
        response = await client(ctx).get(f"/v1/refunds/{quote(request_id, safe='')}")
        return status_answer(request_id, response)

    @server.tool(name="my_budget", description=MY_BUDGET)
    async def my_budget(ctx: Context[Any, Any, Any]) -> str:
        return budget_answer(await client(ctx).get("/v1/client"))

    @server.tool(name="my_recent_refunds", description=MY_RECENT_REFUNDS)
    async def my_recent_refunds(
        ctx: Context[Any, Any, Any],
        limit: Annotated[int, Field(strict=True, ge=1, le=100, description="How many, newest first")] = 20,
    ) -> str:
        return recent_answer(await client(ctx).get(f"/v1/client/refunds?limit={limit}"))

    return server
