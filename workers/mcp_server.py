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
from pydantic import Field

from domain.clients import KEY_PREFIX
from domain.money import format_minor
from domain.requests import METADATA_VALUE_LENGTH

KEY_VARIABLE = "REFUNDS_CLIENT_KEY"
EXPLANATION_KEY = "explanation"  # the request's metadata key: kept with the request, in its audit trail
TIMEOUT_SECONDS = 30.0

INSTRUCTIONS = (
    "You act as one API client of a refund service, for one merchant only. You can ask for a "
    "refund; you cannot approve one, cannot exceed your client's limits without a human deciding, "
    "and cannot act for another merchant. A refund over your maximum per refund or your daily "
    "budget is started but held for a human reviewer: say so to the customer, never retry it to get "
    "around the hold."
)

REQUEST_REFUND = (
    "Ask for a refund of a payment, for this client's merchant. It WILL start the refund when the "
    "reason is one this client may use; within the client's maximum per refund and daily budget it "
    "is refunded without a human (unless the product's risk rules send it to review), over them it "
    "is started but HELD for a human reviewer, and the answer says why. It will NOT approve a "
    "refund (only a human reviewer can), will NOT exceed the client's limits without a human, and "
    "will NOT act for another merchant. The same request_id again is the same refund, never a "
    "second one. Your explanation is kept with the request in its audit trail: write why the "
    "customer should be refunded, as a reviewer would want to read it."
)


REFUND_STATUS = (
    "Read one refund this client asked for: its status (received, validating, scoring, "
    "awaiting_review, refunding, awaiting_confirmation, needs_attention, succeeded, failed, "
    "rejected, cancelled), its amount and, when it failed, why. It will NOT show refunds other "
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
                raise ToolError(f"the refund service at {self._base} cannot be reached: {err}") from err


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


def build_server(service_base: str, key_of: KeyOf, host: str = "127.0.0.1") -> FastMCP:
    """The tools, acting with the key `key_of` gives for each call. `host` is where streamable
    HTTP listens (the SDK guards a loopback address against DNS rebinding)."""
    server = FastMCP("refunds", instructions=INSTRUCTIONS, host=host, stateless_http=True, json_response=True)

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
        body = {
            "request_id": request_id,
            "provider": provider,
            "payment_reference": payment_reference,
            "amount": {"value": amount_minor, "currency": currency.upper()},
            "reason_code": reason_code,
            "order_id": order_id,
            "metadata": {EXPLANATION_KEY: explanation[:METADATA_VALUE_LENGTH]},
        }
        return answer(request_id, await client(ctx).post("/v1/refund-requests", body))

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


def budget_answer(response: httpx.Response) -> str:
    standing = _read(response)
    lines = [
        f"Client {standing['name']} acts for merchant {standing['merchant_id']} with the reasons "
        f"{', '.join(standing['reasons'])}.",
        f"Per currency, without a human: a refund up to the maximum, and the daily budget (the last "
        f"{standing['window_hours']} hours); above either, or in another currency, a human decides:",
    ]
    for budget in standing["budgets"]:
        currency = budget["daily"]["currency"]
        lines.append(
            f"- {currency}: at most {format_minor(budget['max_per_refund']['value'], currency)} per refund; "
            f"{format_minor(budget['left']['value'], currency)} left of "
            f"{format_minor(budget['daily']['value'], currency)} "
            f"({format_minor(budget['reserved']['value'], currency)} reserved)"
        )
    if not standing["budgets"]:
        lines.append("- none: every refund waits for a human")
    return "\n".join(lines)


def recent_answer(response: httpx.Response) -> str:
    refunds: list[dict[str, Any]] = _read(response)["refunds"]
    if not refunds:
        return "This client asked for no refunds lately."
    lines = ["Newest first (status as last published):"]
    for refund in refunds:
        amount = refund.get("amount")
        money = f" {format_minor(amount['value'], amount['currency'])} {amount['currency']}" if amount else ""
        lines.append(f"- {refund['request_id']}:{money} {refund['status']} (asked {refund['started_at']})")
    return "\n".join(lines)


def _read(response: httpx.Response) -> dict[str, Any]:
    """A read's answer; any failure is the tool's error, in the service's words."""
    if response.status_code != 200:
        raise _tool_error(response)
    payload: dict[str, Any] = response.json()
    return payload


def _tool_error(response: httpx.Response) -> ToolError:
    """A key that does not work, or a service that does not answer: not the assistant's to fix."""
    code, message, _ = _error_of(_payload(response))
    if response.status_code == 401:
        return ToolError(f"the client key is not accepted ({message or 'unauthorized'}): ask an operator")
    return ToolError(f"the refund service answered HTTP {response.status_code}: {code} {message}".strip())


def _payload(response: httpx.Response) -> dict[str, Any]:
    """The service's JSON object; {} for anything else (a proxy's page, an empty body)."""
    try:
        payload = response.json()
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}


def _error_of(payload: dict[str, Any]) -> tuple[str, str, list[dict[str, Any]]]:
    """The code, message and details of the service's `{"error": ...}`; empty where there is none."""
    error = payload.get("error")
    error = error if isinstance(error, dict) else {}
    return str(error.get("code", "")), str(error.get("message", "")), list(error.get("details") or [])


def status_answer(request_id: str, response: httpx.Response) -> str:
    """A refund this client asked for, in words; one it did not ask for is as unknown as none."""
    if response.status_code == 404:
        return f"NOT FOUND: this client asked for no refund {request_id}."
    if response.status_code != 200:
        return answer(request_id, response)
    view: dict[str, Any] = response.json()
    amount = view.get("amount") or view.get("requested_amount")
    money = f" of {amount['value']} minor units of {amount['currency']}" if amount else ""
    failure = (
        f" ({view['failure_code']}: {view.get('failure_message', '')})" if view.get("failure_code") else ""
    )
    return f"Refund {request_id}{money} is {view['status']}{failure}."


def answer(request_id: str, response: httpx.Response) -> str:
    """What the service said, in words an assistant passes on as they are; a key that does not work
    or a service that does not answer is a tool error."""
    payload = _payload(response)
    code, message, details = _error_of(payload)
    if response.status_code == 202:
        held = payload.get("held_for") or []
        if held:
            why = "; ".join(f"{reason['code']}: {reason['detail']}" for reason in held)
            return (
                f"HELD FOR A HUMAN: refund {request_id} was started but waits for a reviewer ({why}). "
                "You cannot approve it: a person decides. Tell the customer it is being reviewed."
            )
        return (
            f"ACCEPTED: refund {request_id} is {payload.get('status', 'received')}. Within this "
            "client's limits it goes ahead without a human, unless the product's risk rules send it "
            "to a reviewer."
        )
    if response.status_code == 200:
        return (
            f"ALREADY REQUESTED: refund {request_id} was asked for before with this same request; its "
            f"status is {payload.get('status')}. Nothing new was started."
        )
    if response.status_code == 403:
        return f"REFUSED ({code}): {message}. Nothing was started."
    if response.status_code == 409:
        return f"REFUSED ({code}): {message}. Use a new request_id for another refund. Nothing was started."
    if response.status_code in (400, 413, 422):
        where = "; ".join(
            f"{'.'.join(str(part) for part in d.get('loc', []))}: {d.get('msg')}" for d in details
        )
        return f"INVALID ({code or response.status_code}): {message}" + (f" ({where})" if where else "")
    raise _tool_error(response)
