"""What `refunds mcp` tells an assistant, in words it can pass on to a customer as they are.

An answer says what happened to the refund, read from its real state: accepted and being paid,
refunded, held for a human and why, waiting for the merchant's staff and why. Whatever did not get
the customer their money (refused, invalid, failed, rejected, cancelled) is an MCP tool error, so an
assistant that only looks at `isError` never tells a customer a refund is on its way when it is not.
Amounts read as money (25.00 EUR), as every tool says them.
"""

from __future__ import annotations

from typing import Any

import httpx
from mcp.server.fastmcp.exceptions import ToolError
from pydantic import ValidationError

from domain.money import format_minor
from domain.status import RefundStatus

# still being checked: the answer waits a moment for what the refund became
EARLY = frozenset({RefundStatus.RECEIVED, RefundStatus.VALIDATING, RefundStatus.SCORING})
_NOT_PAID_VALUES = frozenset({"failed", "rejected", "cancelled"})
_NOT_PAID = {
    RefundStatus.FAILED: "FAILED",
    RefundStatus.REJECTED: "REJECTED",
    RefundStatus.CANCELLED: "CANCELLED",
}


def money(amount: dict[str, Any] | None) -> str:
    """`{"value": 2500, "currency": "EUR"}` as "25.00 EUR"; "" when there is none."""
    if not amount:
        return ""
    return f"{format_minor(int(amount['value']), str(amount['currency']))} {amount['currency']}"


def outcome(
    request_id: str, view: dict[str, Any], held_for: list[dict[str, Any]], again: bool = False
) -> str:
    """The refund as it stands, after the service took the request (`again`: it had before)."""
    status = RefundStatus(view["status"])
    amount = money(view.get("amount") or view.get("requested_amount"))
    refund = f"refund {request_id}" + (f" of {amount}" if amount else "")
    before = "ALREADY REQUESTED, nothing new was started. " if again else ""
    why = _failure(view)
    if status in _NOT_PAID:
        raise ToolError(
            f"{before}{_NOT_PAID[status]}{why}: {refund} was not paid back; nothing was refunded. "
            "Tell the customer it could not be refunded this way."
        )
    if status is RefundStatus.SUCCEEDED:
        return f"{before}REFUNDED: {refund} was paid back by the payment provider."
    if status is RefundStatus.AWAITING_REVIEW:
        reasons = "; ".join(f"{reason['code']}: {reason['detail']}" for reason in held_for)
        because = reasons or "the merchant's own risk rules"
        return (
            f"{before}HELD FOR A HUMAN: {refund} waits for a reviewer ({because}). You cannot approve "
            "it: a person decides. Tell the customer it is being reviewed."
        )
    if status is RefundStatus.NEEDS_ATTENTION:
        return (
            f"{before}WAITING FOR THE MERCHANT'S STAFF{why}: {refund} is stopped until they act; "
            "nothing was refunded yet. Tell the customer it is being looked into."
        )
    if status in EARLY:
        return (
            f"{before}RECEIVED: {refund} is still being checked ({status.value}). Ask refund_status "
            "in a moment before telling the customer anything more."
        )
    return (
        f"{before}ACCEPTED: {refund} is being paid back by the payment provider ({status.value}); "
        "no human needs to decide it."
    )


def _failure(view: dict[str, Any]) -> str:
    code = view.get("failure_code")
    if not code:
        return ""
    message = str(view.get("failure_message") or "").strip()
    return f" ({code}: {message})" if message else f" ({code})"


def refused(request_id: str, response: httpx.Response) -> ToolError:
    """The service did not take the request: nothing was started."""
    code, message, details = error_of(payload(response))
    if response.status_code in (403, 409):
        hint = " Use a new request_id for another refund." if response.status_code == 409 else ""
        return ToolError(f"REFUSED ({code}): {message}.{hint} Nothing was started for {request_id}.")
    if response.status_code in (400, 413, 422):
        where = "; ".join(f"{'.'.join(str(p) for p in d.get('loc', []))}: {d.get('msg')}" for d in details)
        extra = f" ({where})" if where else ""
        return ToolError(f"INVALID ({code or response.status_code}): {message}{extra}. Nothing was started.")
    return tool_error(response)


def invalid_arguments(err: ValidationError) -> ToolError:
    """The tool's own argument checks, in one line per argument (without pydantic's links)."""
    lines = [f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}" for e in err.errors()]
    return ToolError("INVALID (invalid_arguments): " + "; ".join(lines) + ". Nothing was done.")


def status_answer(request_id: str, response: httpx.Response) -> str:
    """A refund this client asked for, in words; one it did not ask for is as unknown as none."""
    if response.status_code == 404:
        raise ToolError(f"NOT FOUND: this client asked for no refund {request_id}.")
    view = read(response)
    status = view["status"]
    amount = money(view.get("amount") or view.get("requested_amount"))
    of = f" of {amount}" if amount else ""
    if RefundStatus(status) in _NOT_PAID:  # what paid nothing back is an error to the assistant
        raise ToolError(
            f"{_NOT_PAID[RefundStatus(status)]}{_failure(view)}: refund {request_id}{of} was not paid "
            "back; nothing was refunded."
        )
    return f"Refund {request_id}{of} is {status}{_failure(view)}."


def budget_answer(response: httpx.Response) -> str:
    standing = read(response)
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
            f"({format_minor(budget['reserved']['value'], currency)} used by refunds of the last "
            f"{standing['window_hours']} hours, paid back or under way)"
        )
    if not standing["budgets"]:
        lines.append("- none: every refund waits for a human")
    return "\n".join(lines)


def recent_answer(response: httpx.Response) -> str:
    refunds: list[dict[str, Any]] = read(response)["refunds"]
    if not refunds:
        return "This client asked for no refunds lately."
    lines = ["Newest first (status as last published):"]
    for refund in refunds:
        amount = money(refund.get("amount"))
        said = f" {amount}" if amount else ""
        why = " (refund_status says why)" if refund["status"] in _NOT_PAID_VALUES else ""
        lines.append(
            f"- {refund['request_id']}:{said} {refund['status']}{why} (asked {refund['started_at']})"
        )
    return "\n".join(lines)


def read(response: httpx.Response) -> dict[str, Any]:
    """A read's answer; any failure is the tool's error, in the service's words."""
    if response.status_code != 200:
        raise tool_error(response)
    answer: dict[str, Any] = response.json()
    return answer


def tool_error(response: httpx.Response) -> ToolError:
    """A key that does not work, or a service that does not answer: not the assistant's to fix."""
    code, message, _ = error_of(payload(response))
    if response.status_code == 401:
        return ToolError(f"the client key is not accepted ({message or 'unauthorized'}): ask an operator")
    return ToolError(f"the refund service answered HTTP {response.status_code}: {code} {message}".strip())


def payload(response: httpx.Response) -> dict[str, Any]:
    """The service's JSON object; {} for anything else (a proxy's page, an empty body)."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def error_of(body: dict[str, Any]) -> tuple[str, str, list[dict[str, Any]]]:
    """The code, message and details of the service's `{"error": ...}`; empty where there is none."""
    error = body.get("error")
    error = error if isinstance(error, dict) else {}
    return str(error.get("code", "")), str(error.get("message", "")), list(error.get("details") or [])
