"""`refunds pending|attention|approve|reject|void-approval|retry|receive|release-hold`: people
steering refunds, each as who they prove to be (a reviewer's token through the service, an operator by
name)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from domain.contracts import CancelInput, RetryInput, ReviewInput, VoidApprovalInput
from domain.naming import workflow_id
from domain.status import ErrorCode, Provider, RefundStatus
from workers.cli_kit import app, current_settings, fail, identity, print_rows, run_ops, say

PYDANTIC = "Value error, "  # how pydantic opens a validator's own message

if TYPE_CHECKING:
    from domain.contracts import RefundState
    from domain.returns import ReceiptLine, ReturnsState


@app.command()
def pending(
    merchant: Annotated[str | None, typer.Option(help="Only this merchant's refunds")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """List refunds awaiting review.

    Example: refunds pending --merchant globex --json"""
    from workers.ops import SteerError, pending_reviews

    settings = current_settings()
    try:
        rows = run_ops(pending_reviews(settings, merchant))
    except SteerError as err:
        fail(err.code, err, 2)
    if not rows and merchant is not None and merchant not in settings.merchant_profiles():
        # an empty queue of a merchant these settings do not know says nothing of that merchant
        fail("not_found", f"no merchant {merchant!r} is configured here (REFUNDS_MERCHANTS_FILE)", 2)
    if as_json:
        print(json.dumps([_pending_object(row) for row in rows], indent=2))
        return
    columns = ("request id", "amount", "risk", "reasons", "approvals", "waiting since", "escalated")
    print_rows(columns, rows, "no refunds awaiting review", False)


@app.command()
def attention(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """List what ops must act on: refunds in needs_attention, refunds the PSP failed after success,
    PSP outcomes signalled without proof (unproven_psp_update) and PSP events refused as naming
    another merchant's payment or refund (foreign_psp_event).

    Example: refunds attention --json"""
    from workers.ops import needing_attention

    rows = run_ops(needing_attention(current_settings()))
    print_rows(("request id", "state", "why"), rows, "nothing needs attention", as_json)


_TOKEN_HELP = "Your reviewer token (default REFUNDS_REVIEWER_TOKEN; in dev, the dev reviewer's)"
_REVIEWER_HELP = "Who you are: refused unless the token is theirs (the token decides who acts)"


@app.command()
def approve(
    request_id: str,
    reviewer: Annotated[str | None, typer.Option(help=_REVIEWER_HELP)] = None,
    reason: Annotated[str, typer.Option(help="Optional note")] = "",
    token: Annotated[str | None, typer.Option(help=_TOKEN_HELP)] = None,
) -> None:
    """Approve a refund awaiting review, as the reviewer your token proves (through the service).

    Example: refunds approve demo-2 --reason 'receipt checked'
    """
    _decide(request_id, "approve", reason, token, reviewer)


@app.command()
def reject(
    request_id: str,
    reason: Annotated[str, typer.Option(help="Why (required)")],
    reviewer: Annotated[str | None, typer.Option(help=_REVIEWER_HELP)] = None,
    token: Annotated[str | None, typer.Option(help=_TOKEN_HELP)] = None,
) -> None:
    """Reject a refund awaiting review; no money moves.

    Example: refunds reject demo-3 --reason 'abuse pattern'
    """
    _decide(request_id, "reject", reason, token, reviewer)


def _decide(request_id: str, verdict: str, reason: str, token: str | None, reviewer: str | None) -> None:
    from workers.review_client import ReviewError, decide, reviewer_token

    settings = current_settings()
    try:
        state = decide(settings, request_id, verdict, reason, reviewer_token(settings, token), reviewer)
    except ReviewError as err:
        fail(err.code, err, 2 if err.code == "unauthorized" else 1)
    approvals = len(state.get("approvals") or [])
    say(f"{request_id}: {state['status']} ({approvals} approval(s))")


@app.command("void-approval")
def void_approval(
    request_id: str,
    reviewer: Annotated[str, typer.Option(help="Whose approvals no longer count (a revoked reviewer)")],
    operator: Annotated[str | None, typer.Option(help="Who decides (default REFUNDS_OPERATOR)")] = None,
    reason: Annotated[str, typer.Option(help="Why, for the audit trail")] = "",
) -> None:
    """Take back a person's approvals of a refund still awaiting review: they no longer count, so
    four eyes need two people approving now. Removing a reviewer's token stops their new decisions,
    not the approvals they already gave: void those on each refund they approved (`refunds pending`
    shows the approvals so far). Audited with the operator; no money moves.

    Example: refunds void-approval demo-2 --reviewer bob --operator ann --reason 'token revoked'"""
    request = VoidApprovalInput(reviewer=reviewer, operator=identity(operator), reason=reason)
    state = _steer(request_id, "void_approval", request, quiet=True)
    left = ", ".join(a.reviewer for a in state.approvals) or "none"
    say(f"{request_id}: {state.status.value}; {reviewer}'s approval voided (approvals left: {left})")


@app.command()
def retry(
    request_id: str,
    operator: Annotated[str | None, typer.Option(help="Who asks (default REFUNDS_OPERATOR)")] = None,
) -> None:
    """Retry a refund that needs attention (after the cause was fixed).

    Example: refunds retry demo-4 --operator ann"""
    state = _steer(request_id, "retry", RetryInput(operator=identity(operator)), quiet=True)
    if state.status is RefundStatus.NEEDS_ATTENTION:
        # the retried step refused again at once: say why, and what unblocks it
        why = f"{state.failure_code.value if state.failure_code else ''}: {state.failure_message}".strip(": ")
        hint = ""
        if state.failure_code is ErrorCode.PAYMENT_DISPUTED:
            hint = (
                f"; the payment is still held: lift the hold first (refunds release-hold "
                f"{state.provider.value} {state.payment_reference}), then retry"
            )
        fail("still_needs_attention", f"{request_id} still needs attention ({why}){hint}")
    say(f"{request_id}: {state.status.value}")


@app.command()
def cancel(
    request_id: str,
    reason: Annotated[str, typer.Option(help="Why, for the audit trail")],
    operator: Annotated[str | None, typer.Option(help="Who decides (default REFUNDS_OPERATOR)")] = None,
) -> None:
    """End a refund that needs attention before it reached the PSP (a dispute never released, a
    payment ops will not refund): it ends cancelled, nothing refunded, its reservation and any API
    client's budget given back. A refund waiting after its PSP call is refused: money may have
    moved there, so retry it instead.

    Example: refunds cancel demo-4 --reason "chargeback lost, customer already paid" --operator ann"""
    from workers.ops import wait_for_status

    _steer(request_id, "cancel", CancelInput(operator=identity(operator), reason=reason), quiet=True)
    view = run_ops(wait_for_status(current_settings(), request_id, RefundStatus.CANCELLED, 30))
    say(f"{request_id}: {view['status'] if view else 'cancelled'}")


@app.command()
def receive(
    request_id: str,
    receipt: Annotated[str, typer.Option(help="The warehouse's receipt id (a repeat changes nothing)")],
    line: Annotated[
        list[str], typer.Option(help="SKU:RECEIVED[:SELLABLE], e.g. SHIRT:2:1; repeat for more SKUs")
    ],
    operator: Annotated[str | None, typer.Option(help="Who checked the goods in")] = None,
) -> None:
    """Report returned goods received: their sellable units are restocked, once.

    Example: refunds receive demo-5 --receipt rcpt-1 --line SHIRT:2:1 --operator ann"""
    from pydantic import ValidationError

    from domain.returns import GoodsReceipt, ReturnsState
    from workers.ops import SteerError, steer

    try:
        lines = [_receipt_line(text) for text in line]
        goods = GoodsReceipt(
            receipt_id=receipt, lines=lines, received_by=identity(operator), request_id=request_id
        )
    except ValidationError as err:  # one line per field, without pydantic's links
        said = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'receipt'}: {str(e['msg']).removeprefix(PYDANTIC)}"
            for e in err.errors()
        )
        fail("invalid_request", said, 2)
    except ValueError as err:
        fail("invalid_request", err, 2)
    try:
        state = run_ops(
            steer(current_settings(), workflow_id(request_id), "goods_received", goods, ReturnsState)
        )
    except SteerError as err:
        if err.code == ErrorCode.ALREADY_FINISHED:  # its workflow ended: nothing takes the receipt now
            fail(
                "returns_closed",
                f"refund {request_id} is finished and its returns are closed (every unit expected came "
                f"back, or the return deadline passed): receipt {receipt} was not taken",
            )
        fail(err.code, err)
    say(f"{request_id}: returns {state.status.value}; {_units(state)}")
    if state.restocking:
        say(f"receipt{'s' if len(state.restocking) > 1 else ''} {', '.join(state.restocking)} being recorded")


def _units(state: ReturnsState) -> str:
    """Units per SKU in words: `received MUG 2, SHIRT 1; restocked MUG 1` (or `nothing`)."""

    def listed(units: dict[str, int]) -> str:
        return ", ".join(f"{sku} {count}" for sku, count in sorted(units.items())) or "nothing"

    return f"received {listed(state.received)}; restocked {listed(state.restocked)}"


def _receipt_line(text: str) -> ReceiptLine:
    from domain.returns import ReceiptLine

    sku, _, counts = text.partition(":")
    received, _, sellable = counts.partition(":")
    if not sku or not received.isdigit() or (sellable and not sellable.isdigit()):
        raise ValueError(f"{text!r} is not SKU:RECEIVED[:SELLABLE]")
    return ReceiptLine(sku=sku, received=int(received), sellable=int(sellable or received))


@app.command("release-hold")
def release_hold(
    provider: Annotated[Provider, typer.Argument(help="stripe, adyen or paypal")],
    payment_reference: str,
    operator: Annotated[
        str | None,
        typer.Option(help="Who decided the dispute allows refunds again (default REFUNDS_OPERATOR)"),
    ] = None,
) -> None:
    """Lift a dispute hold on a payment; then `refunds retry` the refunds that wait on it.

    Example: refunds release-hold stripe pi_123 --operator ann"""
    from adapters.db import holds
    from adapters.db.engine import Database

    who = identity(operator)
    db = Database.connect(current_settings().database_url)
    try:
        released = holds.release_hold(db, provider, payment_reference, who)
    finally:
        db.dispose()
    if not released:
        fail("not_found", f"no open hold on {provider.value} {payment_reference}")
    say(f"hold on {provider.value} {payment_reference} released by {who}")


def _steer(
    request_id: str,
    update: str,
    argument: ReviewInput | RetryInput | CancelInput | VoidApprovalInput,
    *,
    quiet: bool = False,
) -> RefundState:
    from domain.contracts import RefundState
    from workers.ops import SteerError, steer

    try:
        state = run_ops(steer(current_settings(), workflow_id(request_id), update, argument, RefundState))
    except SteerError as err:
        fail(err.code, err)
    if not quiet:
        say(f"{request_id}: {state.status.value}")
    return state


def _pending_object(row: tuple[str, ...]) -> dict[str, object]:
    """A queued refund for scripts: typed values (amount in minor units, risk a number, approvals
    given and needed, escalated true or false), not the table's cells."""
    from domain.money import parse_major_text

    request_id, money, risk, reasons, approvals, since, escalated = row
    major, _, currency = money.partition(" ")
    given, _, needed = approvals.partition("/")
    listed = [reason.strip() for reason in reasons.split(",") if reason.strip()]
    return {
        "request_id": request_id,
        "amount": {"value": parse_major_text(major, currency), "currency": currency} if currency else None,
        "risk_score": int(risk) if risk.isdigit() else None,
        "reasons": [reason for reason in listed if not reason.startswith("requested by ")],
        "requested_by": next(
            (reason.removeprefix("requested by ") for reason in listed if reason.startswith("requested by ")),
            None,
        ),
        "approvals": {"given": int(given), "needed": int(needed)} if needed else None,
        "waiting_since": since,
        "escalated": escalated == "yes",
    }
