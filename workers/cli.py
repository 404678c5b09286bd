"""`refunds`: run the product, sign requests, and steer refunds."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from temporalio.service import RPCError

from domain import signature
from domain.contracts import RetryInput, ReviewInput
from domain.naming import workflow_id
from domain.status import Provider, RefundStatus
from workers.settings import Settings, local_settings
from workers.terminal import printable

if TYPE_CHECKING:
    from domain.returns import ReceiptLine
    from workers.versioning import DeploymentView

T = TypeVar("T")

app = typer.Typer(help="Refund automation on Temporal.", no_args_is_help=True)
console = Console()


def _settings() -> Settings:
    return _loaded(local_settings)


def _loaded(make: Callable[[], Settings]) -> Settings:
    """The settings, or one line naming what is wrong with them: never a traceback, which would
    print every value given (the secrets among them) into the log."""
    from pydantic import ValidationError

    try:
        return make()
    except ValidationError as err:
        _fail("invalid_settings", _settings_problem(err), 2)


def _settings_problem(err: Any) -> str:
    """What a settings ValidationError says, without the values it was given."""
    problems = []
    for error in err.errors(include_url=False, include_input=False, include_context=False):
        name = "_".join(str(part) for part in error["loc"]).upper()
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append(f"REFUNDS_{name}: {message}" if name else message)
    return "; ".join(problems)


def _say(message: str) -> None:
    """Plain text: names, ids and messages may hold brackets, which are never read as markup, and
    control characters, which are shown, never sent to the terminal as they are."""
    console.print(printable(message), markup=False, highlight=False, soft_wrap=True)


def _print_table(table: Table, rows: Sequence[Sequence[object]], empty: str) -> None:
    """A table of plain-text cells (a reason may hold brackets), or what it means to have none."""
    for row in rows:
        table.add_row(*(Text(printable(cell)) for cell in row))
    if rows:
        console.print(table)
    else:
        _say(empty)


def _print_rows(columns: Sequence[str], rows: Sequence[Sequence[object]], empty: str, as_json: bool) -> None:
    """A table for people, or with --json a list of objects keyed by the columns (snake_case)."""
    if as_json:
        keys = [column.replace(" ", "_") for column in columns]
        print(json.dumps([dict(zip(keys, row, strict=True)) for row in rows], indent=2, default=str))
    else:
        _print_table(Table(*columns), rows, empty)


def _fail(code: str, message: object, exit_code: int = 1) -> NoReturn:
    """One line, `code: message`, and the exit status scripts check."""
    console.print(
        Text.assemble((printable(code), "red"), f": {printable(message)}"), highlight=False, soft_wrap=True
    )
    raise typer.Exit(exit_code)


def _identity(given: str | None) -> str:
    """Who the CLI acts as: the option, else REFUNDS_OPERATOR; never anonymous."""
    who = (given or _settings().operator).strip()
    if not who:
        _fail("unauthorized", "pass --reviewer/--operator or set REFUNDS_OPERATOR", 2)
    return who


@app.command("payload-key")
def payload_key(key_id: str) -> None:
    """A new AES-256 key for workflow payloads: put it first in REFUNDS_PAYLOAD_KEYS to encrypt with
    it, keep the old ones after it so older histories still open.

    Example: refunds payload-key k2026"""
    from workers.codec import new_key_entry

    _say(new_key_entry(key_id))


@app.command("reviewer-token")
def reviewer_token(name: str) -> None:
    """A new token for a reviewer, and the REFUNDS_REVIEWER_TOKENS entry (its hash) to configure.

    Example: refunds reviewer-token alice"""
    from domain.reviewer_tokens import new_reviewer_entry

    token, entry = new_reviewer_entry(name)
    _say(f"token for {name} (give it to them, it is not stored): {token}")
    _say(f"add to REFUNDS_REVIEWER_TOKENS: {entry}")


def _checked_settings(*, signs_decisions: bool = False, safe_start: bool = False) -> Settings:
    """Settings for a long-running process: a bad policy file stops it before it starts anything.
    Its own environment alone: what a `refunds dev` told its children is for commands run by hand."""
    from domain.policy_file import PolicyError

    settings = _loaded(Settings)
    if safe_start:
        from workers.safety import start_problem, start_warning

        problem = start_problem(settings)
        if problem is not None:
            _fail("unsafe_settings", problem, 2)
        warning = start_warning(settings)
        if warning is not None:
            console.print(
                f"[yellow]warning[/yellow]: {escape(printable(warning))}", highlight=False, soft_wrap=True
            )
    try:
        policy = settings.policy()
        settings.risk_model()
        if signs_decisions:
            settings.decision_key()
        for profile in settings.merchant_profiles().values():  # each merchant's policy must load too
            settings.model_copy(update={"policy_file": profile.policy_file}).policy()
    except PolicyError as err:
        _fail("invalid_policy", err, 2)
    _say(f"refund policy {policy.version}")
    from workers.logs import configure_logging

    configure_logging(settings.log_format)
    return settings


def _run(operation: Coroutine[Any, Any, T]) -> T:
    """Run an ops call; Temporal being down or refusing is a one-line error, not a traceback."""
    try:
        return asyncio.run(operation)
    except RPCError as err:
        _fail("temporal_error", err.message)
    except RuntimeError as err:  # the client could not connect
        _fail("temporal_unavailable", err)


@app.command()
def dev() -> None:
    """Run everything on embedded defaults: Temporal + UI, sandbox, worker, service.

    Example: REFUNDS_HTTP_PORT=8001 refunds dev"""
    from workers.dev import run_dev

    environment = _loaded(Settings).environment
    if environment != "dev":  # its children run as dev, on dev's secrets, against this database
        _fail(
            "unsafe_settings",
            f"refunds dev runs on a development machine only: REFUNDS_ENVIRONMENT={environment}",
            2,
        )
    raise typer.Exit(run_dev(_checked_settings()))


@app.command()
def worker() -> None:
    """Run the Temporal worker against REFUNDS_TEMPORAL_ADDRESS and REFUNDS_DATABASE_URL.

    Example: REFUNDS_ENVIRONMENT=production refunds worker"""
    from workers.worker import run_worker

    asyncio.run(run_worker(_checked_settings(safe_start=True)))


@app.command()
def serve() -> None:
    """Run the webhook starter service (FastAPI, OpenAPI at /docs).

    Example: REFUNDS_ENVIRONMENT=production refunds serve"""
    from workers.service.app import serve as serve_http

    asyncio.run(serve_http(_checked_settings(signs_decisions=True, safe_start=True)))


@app.command()
def sandbox(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1")] = 12111,
    service_url: Annotated[
        str | None, typer.Option(help="The refunds service; signed events go to its /webhooks/<psp>")
    ] = None,
) -> None:
    """Run the PSP sandboxes (Stripe's and Adyen's API paths) on loopback, state under REFUNDS_DATA_DIR.

    Example: refunds sandbox --port 12111"""
    try:
        from workers.sandbox import run_sandbox
    except ModuleNotFoundError as err:  # the image leaves the sandbox out: it is a dev and test tool
        if (err.name or "").partition(".")[0] != "sandbox":
            raise
        _fail("not_installed", "the PSP sandbox is a development tool; install refunds from a checkout", 2)
    run_sandbox(_settings(), port, service_url)


@app.command()
def mcp(
    http: Annotated[
        bool, typer.Option("--http", help="Streamable HTTP instead of stdio: each caller brings its key")
    ] = False,
    host: Annotated[str, typer.Option(envvar="REFUNDS_MCP_HOST", help="Where --http listens")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="REFUNDS_MCP_PORT", help="Where --http listens")] = 8765,
) -> None:
    """Serve an AI assistant over MCP as an API client: it asks the service at REFUNDS_SERVICE_URL
    for refunds within that client's scope, limits and budget. Over stdio the client is the one
    whose key is REFUNDS_CLIENT_KEY; over --http every request brings its own key as
    `Authorization: Bearer`, and an unknown or revoked key is refused with 401.

    Example: REFUNDS_CLIENT_KEY=rfc_... REFUNDS_SERVICE_URL=https://refunds.example.com refunds mcp"""
    from workers.mcp_server import KEY_VARIABLE, build_server

    service_base = _settings().service_base
    if http:
        from workers.mcp_http import serve_http

        _run(serve_http(service_base, host, port))
        return
    key = os.environ.get(KEY_VARIABLE, "").strip()
    if not key:  # stdout is the protocol's: the one line goes to stderr
        print(f"unauthorized: set {KEY_VARIABLE} to the key of `refunds client create`", file=sys.stderr)
        raise typer.Exit(2)
    build_server(service_base, lambda _ctx: key).run("stdio")


@app.command()
def sign(
    body: Annotated[Path | None, typer.Option(help="File holding the exact body; stdin if omitted")] = None,
) -> None:
    """Print the Refund-Signature header value for a request body.

    Example: printf %s "$body" | refunds sign
    """
    raw = body.read_bytes() if body else sys.stdin.buffer.read()
    print(signature.sign(_settings().inbound_secrets, int(time.time()), raw))


@app.command()
def status(
    request_id: str,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
    wait: Annotated[
        RefundStatus | None,
        typer.Option(help="Return once the refund is in this status (exit 1 if it ends elsewhere)"),
    ] = None,
    timeout: Annotated[float, typer.Option(min=0, help="Seconds --wait waits at most")] = 60,
) -> None:
    """Show a refund: status, amounts, PSP refund id, risk, review and audit trail.

    Example: refunds status demo-1 --wait succeeded"""
    from workers.ops import refund_view, wait_for_status

    settings = _settings()
    if wait is None:
        view = _run(refund_view(settings, request_id))
    else:
        view = _run(wait_for_status(settings, request_id, wait, timeout))
    if view is None:
        _fail("not_found", f"no refund {request_id}")
    if as_json:
        print(json.dumps(view, indent=2, default=str))
    else:
        from workers.ops import render_refund

        render_refund(console, view)
    if wait is not None and view["status"] != wait.value:
        _fail("not_reached", f"{request_id} is {view['status']}, not {wait.value}")


@app.command()
def audit(
    request_id: str,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """A refund's audit trail from the database: every step, actor, reason and PSP call.

    Example: refunds audit demo-1 --json"""
    from adapters.db import audit as audit_rows
    from adapters.db.engine import Database
    from workers.ops import render_audit

    db = Database.connect(_settings().database_url)
    try:
        with db.transaction() as session:
            trail = [entry.model_dump(mode="json") for entry in audit_rows.trail(session, request_id)]
    finally:
        db.dispose()
    if not trail:
        _fail("not_found", f"no audit trail for {request_id}")
    if as_json:
        print(json.dumps(trail, indent=2))
        return
    render_audit(console, trail)


@app.command("export")
def export_ledger(
    fmt: Annotated[str, typer.Option("--format", help="csv or jsonl")] = "jsonl",
    out: Annotated[
        Path | None, typer.Option(help="Append the entries to this file and mark them exported")
    ] = None,
    to_stdout: Annotated[
        bool, typer.Option("--stdout", help="Write them to standard output and mark them exported")
    ] = False,
    peek: Annotated[
        bool, typer.Option("--peek", help="Show what the next export would send; mark nothing")
    ] = False,
    limit: Annotated[int, typer.Option(min=1, help="At most this many entries")] = 10_000,
) -> None:
    """Ledger entries not yet exported, for the ERP: each entry leaves once (see the README).

    Example: refunds export --format csv --out ledger.csv"""
    from adapters.db import outbox
    from adapters.db.engine import Database
    from workers.erp_export import ExportFormat, file_writer, write_batch

    try:
        export_format = ExportFormat(fmt)
    except ValueError:
        _fail("invalid_format", f"{fmt!r} is not csv or jsonl", 2)
    if [out is not None, to_stdout, peek].count(True) != 1:
        _fail(
            "choose_destination", "pass one of --out FILE, --stdout (both mark entries exported) or --peek", 2
        )

    def to_terminal(batch: outbox.ExportBatch) -> None:
        write_batch(batch, sys.stdout, export_format, header=True)
        sys.stdout.flush()

    db = Database.connect(_settings().database_url)
    try:
        if peek:
            to_terminal(outbox.ExportBatch("(not exported)", outbox.peek(db, limit=limit)))
            return
        batch = outbox.export(db, file_writer(out, export_format) if out else to_terminal, limit=limit)
        previous = None if batch.entries else outbox.last_batch(db)
    except OSError as err:  # raised while writing: the claim rolled back, nothing is marked
        _fail(
            "cannot_write", f"{out or 'standard output'}: {err.strerror or err}; nothing was marked exported"
        )
    finally:
        db.dispose()
    done = Console(stderr=True, markup=False, highlight=False)
    if batch.entries:
        done.print(f"exported {len(batch.entries)} ledger entries as batch {batch.batch_id}")
    else:
        done.print(f"nothing new to export since batch {previous}" if previous else "nothing to export yet")


@app.command("reconcile")
def reconcile_command(
    provider: Annotated[Provider, typer.Option(help="stripe, adyen or paypal")],
    since: Annotated[datetime, typer.Option(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"], help="UTC")],
    payment: Annotated[list[str] | None, typer.Option(help="Only this payment (repeatable)")] = None,
    merchant: Annotated[
        str | None, typer.Option(help="Whose PSP account and books (default: the default merchant)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """The PSP's refunds against the books: missing on either side, amount or status differences.
    Exits 1 when anything differs.

    Example: refunds reconcile --provider stripe --since 2026-11-01 --json"""
    from rich.progress import Progress

    from adapters.psp.base import PspError
    from workers.reconcile import reconcile_provider

    start = since.replace(tzinfo=UTC) if since.tzinfo is None else since
    with Progress(console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(f"{provider.value} refunds", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        try:
            found = reconcile_provider(_settings(), provider, start, payment or [], advance, merchant)
        except PspError as err:
            _fail(err.code.value, err.message, 2)
    if as_json:
        print(json.dumps([d.model_dump(mode="json") for d in found], indent=2))
    elif not found:
        _say(f"{provider.value}: the books match the PSP since {start:%Y-%m-%d %H:%M}")
    else:
        rows = [
            (d.kind.value, d.psp_refund_id, d.payment_reference, d.request_id or "-", d.ours, d.theirs)
            for d in found
        ]
        _print_table(Table("kind", "PSP refund", "payment", "request", "ours", "theirs"), rows, "")
    if found:
        raise typer.Exit(1)


@app.command()
def pending(
    merchant: Annotated[str | None, typer.Option(help="Only this merchant's refunds")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """List refunds awaiting review.

    Example: refunds pending --merchant globex --json"""
    from workers.ops import SteerError, pending_reviews

    try:
        rows = _run(pending_reviews(_settings(), merchant))
    except SteerError as err:
        _fail(err.code, err, 2)
    columns = ("request id", "amount", "risk", "reasons", "approvals", "waiting since", "escalated")
    _print_rows(columns, rows, "no refunds awaiting review", as_json)


@app.command()
def attention(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """List refunds ops must act on: needs_attention, and refunds the PSP failed after success.

    Example: refunds attention --json"""
    from workers.ops import needing_attention

    rows = _run(needing_attention(_settings()))
    _print_rows(("request id", "state", "why"), rows, "nothing needs attention", as_json)


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

    settings = _settings()
    try:
        state = decide(settings, request_id, verdict, reason, reviewer_token(settings, token), reviewer)
    except ReviewError as err:
        _fail(err.code, err, 2 if err.code == "unauthorized" else 1)
    approvals = len(state.get("approvals") or [])
    _say(f"{request_id}: {state['status']} ({approvals} approval(s))")


@app.command()
def retry(
    request_id: str,
    operator: Annotated[str | None, typer.Option(help="Who asks (default REFUNDS_OPERATOR)")] = None,
) -> None:
    """Retry a refund that needs attention (after the cause was fixed).

    Example: refunds retry demo-4 --operator ann"""
    _steer(request_id, "retry", RetryInput(operator=_identity(operator)))


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
            receipt_id=receipt, lines=lines, received_by=_identity(operator), request_id=request_id
        )
    except (ValueError, ValidationError) as err:
        _fail("invalid_request", err, 2)
    try:
        state = _run(steer(_settings(), workflow_id(request_id), "goods_received", goods, ReturnsState))
    except SteerError as err:
        _fail(err.code, err)
    pending = f", restock pending for {', '.join(state.restocking)}" if state.restocking else ""
    counts = f"received {state.received}, restocked {state.restocked}"
    _say(f"{request_id}: returns {state.status.value}, {counts}{pending}")


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

    who = _identity(operator)
    db = Database.connect(_settings().database_url)
    try:
        released = holds.release_hold(db, provider, payment_reference, who)
    finally:
        db.dispose()
    if not released:
        _fail("not_found", f"no open hold on {provider.value} {payment_reference}")
    _say(f"hold on {provider.value} {payment_reference} released by {who}")


client_app = typer.Typer(
    help="API clients: software (a support agent, a help desk) asking for refunds for a merchant.",
    no_args_is_help=True,
)
app.add_typer(client_app, name="client")


@client_app.command("create")
def client_create(
    name: str,
    reasons: Annotated[str, typer.Option(help="Reason codes it may ask for, comma-separated")],
    max_per_refund: Annotated[
        str, typer.Option(help="Above this (major units of the refund's currency) a human decides")
    ],
    daily_budget: Annotated[
        list[str],
        typer.Option(help="CURRENCY:AMOUNT it may refund without a human over 24 hours; once per currency"),
    ],
    merchant: Annotated[
        str | None, typer.Option(help="The merchant it acts for (default: REFUNDS_MERCHANT_ID)")
    ] = None,
) -> None:
    """A new API client and its key: shown once here, kept hashed.

    Example: refunds client create helpdesk --merchant acme --reasons damaged,not_received
    --max-per-refund 50.00 --daily-budget EUR:200.00"""
    from adapters.db import clients
    from adapters.db.engine import Database
    from domain.clients import (
        Client,
        ClientError,
        check_name,
        new_key,
        parse_budgets,
        parse_major,
        parse_reasons,
    )
    from domain.policy_file import PolicyError

    settings = _settings()
    merchant_id = merchant or settings.merchant_id
    try:
        known = settings.merchant_profiles()
    except PolicyError as err:
        _fail("invalid_settings", err, 2)
    if merchant_id not in known:
        _fail("not_found", f"no merchant {merchant_id!r} is configured here", 2)
    try:
        client = Client(
            name=check_name(name),
            merchant_id=merchant_id,
            reasons=parse_reasons(reasons),
            max_per_refund=parse_major(max_per_refund),
            budgets=parse_budgets(daily_budget),
        )
    except ClientError as err:
        _fail("invalid_client", err, 2)
    key = new_key()
    db = Database.connect(settings.database_url)
    try:
        with db.transaction() as session:
            created = clients.create(session, client, key)
    finally:
        db.dispose()
    if not created:
        _fail("client_exists", f"a client named {name} exists (revoked names are not reused)")
    _say(f"client {name} for merchant {merchant_id}; its key (shown once, give it to the client): {key}")


@client_app.command("list")
def client_list() -> None:
    """Every API client: merchant, reasons, limits, what is left of each daily budget, whether
    revoked (never a key).

    Example: refunds client list"""
    from datetime import UTC, datetime

    from adapters.db import clients
    from adapters.db.engine import Database
    from domain.money import format_minor

    db = Database.connect(_settings().database_url)
    try:
        with db.transaction() as session:
            now = datetime.now(UTC)
            listed = [
                (entry, clients.standing(session, entry.client, now)) for entry in clients.listing(session)
            ]
    finally:
        db.dispose()
    table = Table("client", "merchant", "reasons", "max per refund", "daily budget (left)", "state")
    rows = [
        (
            entry.client.name,
            entry.client.merchant_id,
            ",".join(entry.client.reasons),
            str(entry.client.max_per_refund),
            " ".join(
                f"{b.budget.currency}:{format_minor(b.budget.value, b.budget.currency)}"
                f" ({format_minor(b.left.value, b.left.currency)})"
                for b in standing
            ),
            f"revoked {entry.revoked_at:%Y-%m-%d %H:%M}" if entry.revoked_at else "active",
        )
        for entry, standing in listed
    ]
    _print_table(table, rows, "no API clients")


@client_app.command("rotate")
def client_rotate(
    name: str,
    keep_old_key: Annotated[
        int,
        typer.Option(min=0, max=168, help="Hours the current key still works beside the new one (0: none)"),
    ] = 0,
) -> None:
    """A new key for a client, shown once; its current key stops now, or after --keep-old-key hours
    so the client can switch without a refused request. A key from before that stops at once.

    Example: refunds client rotate helpdesk --keep-old-key 24"""
    from datetime import UTC, datetime, timedelta

    from adapters.db import clients
    from adapters.db.engine import Database
    from domain.clients import new_key

    key = new_key()
    until = datetime.now(UTC) + timedelta(hours=keep_old_key)
    db = Database.connect(_settings().database_url)
    try:
        with db.transaction() as session:
            rotated = clients.rotate(session, name, key, until)
    finally:
        db.dispose()
    if not rotated:
        _fail("not_found", f"no active client {name}")
    lapse = f"works until {until:%Y-%m-%d %H:%M} UTC" if keep_old_key else "stopped working now"
    _say(f"client {name}'s old key {lapse}; its new key (shown once, give it to the client): {key}")


@client_app.command("revoke")
def client_revoke(name: str) -> None:
    """Revoke a client's key for good: its next request is refused (401); its refunds go on.

    Example: refunds client revoke helpdesk"""
    from adapters.db import clients
    from adapters.db.engine import Database

    db = Database.connect(_settings().database_url)
    try:
        with db.transaction() as session:
            revoked = clients.revoke(session, name)
    finally:
        db.dispose()
    if not revoked:
        _fail("not_found", f"no active client {name}")
    _say(f"client {name} revoked")


risk_app = typer.Typer(help="The risk model.", no_args_is_help=True)
app.add_typer(risk_app, name="risk")


@risk_app.command("train")
def risk_train(
    out: Annotated[Path | None, typer.Option(help="Directory for the model (default: data dir)")] = None,
    min_samples: Annotated[int, typer.Option(min=4, help="Decisions needed at least")] = 20,
) -> None:
    """Fit a model on past review decisions, report its quality on held-out ones, save it.

    Example: refunds risk train --min-samples 50"""
    from adapters.db.engine import Database
    from workers.risk_training import TrainingError, train

    settings = _settings()
    db = Database.connect(settings.database_url)
    try:
        report = train(db, out or settings.data_dir / "models", min_samples=min_samples)
    except TrainingError as err:
        _fail("not_enough_data", err)
    finally:
        db.dispose()
    metrics = ", ".join(f"{k} {v}" for k, v in report.model.metrics.items())
    _say(f"trained {report.model.version} on {report.samples} decisions ({report.rejections} rejected)")
    _say(f"held-out quality: {metrics}")
    _say(f"use it: REFUNDS_RISK_MODEL_FILE={report.path}")


db_app = typer.Typer(help="The product's database.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision")] = "head",
) -> None:
    """Apply the database migrations (services also apply them at start).

    Example: refunds db upgrade"""
    from adapters.db import migrate
    from adapters.db.engine import make_engine

    engine = make_engine(_settings().database_url)
    try:
        before = migrate.current_revision(engine)
        after = migrate.upgrade(engine, revision)
    except migrate.UnversionedDatabase as err:
        _fail("unversioned_database", err)
    finally:
        engine.dispose()
    _say(f"database at revision {after} (was {before or 'empty'})")


@db_app.command("current")
def db_current() -> None:
    """The database's migration revision and the newest one this version knows.

    Example: refunds db current"""
    from adapters.db import migrate
    from adapters.db.engine import make_engine

    engine = make_engine(_settings().database_url)
    try:
        _say(f"database {migrate.current_revision(engine) or 'empty'}, newest {migrate.head_revision()}")
    finally:
        engine.dispose()


deploy_app = typer.Typer(
    help="Worker Versioning: which build of the workers gets the work.", no_args_is_help=True
)
app.add_typer(deploy_app, name="deploy")


@deploy_app.command("promote")
def deploy_promote(
    build_id: Annotated[str, typer.Argument(help="The build (REFUNDS_BUILD_ID of its workers)")],
    ramp: Annotated[
        int | None,
        typer.Option(min=0, max=100, help="Send only this percentage of new refunds to it, for now"),
    ] = None,
) -> None:
    """Make a build current (its workers take new refunds and, at their next step, those in flight),
    or ramp it. Promoting the previous build again is the rollback.

    Example: refunds deploy promote v42 --ramp 10"""
    from workers.temporal import connect
    from workers.versioning import promote

    settings = _settings()

    async def run() -> None:
        await promote(await connect(settings), settings, build_id, ramp)

    _run(run())
    share = f"{ramp}% of new refunds" if ramp is not None else "current"
    _say(f"{settings.deployment_name}: build {build_id} {share}")


@deploy_app.command("status")
def deploy_status() -> None:
    """The deployment's builds: current, ramping, draining (refunds still on it) or drained.

    Example: refunds deploy status"""
    from workers.temporal import connect
    from workers.versioning import describe

    settings = _settings()

    async def run() -> DeploymentView:
        return await describe(await connect(settings), settings)

    view = _run(run())
    ramping = f", ramping {view.ramping} at {view.ramp_percentage}%" if view.ramping else ""
    _say(f"{view.name}: current {view.current or 'unversioned'}{ramping}")
    builds = [(build.build_id, build.status, build.drainage) for build in view.builds]
    _print_table(Table("build", "status", "drainage"), builds, "no builds")


def _steer(request_id: str, update: str, argument: ReviewInput | RetryInput) -> None:
    from domain.contracts import RefundState
    from workers.ops import SteerError, steer

    try:
        state = _run(steer(_settings(), workflow_id(request_id), update, argument, RefundState))
    except SteerError as err:
        _fail(err.code, err)
    _say(f"{request_id}: {state.status.value}")


# Commands kept in modules of their own (this one is long enough) register on `app` when imported
# here. `python -m workers.cli` runs this file as `__main__`: named `workers.cli` too, it is the one
# module those commands import `app` from, instead of a second copy whose `app` nobody runs.
sys.modules.setdefault("workers.cli", sys.modules[__name__])
from workers import cli_warnings  # noqa: E402, F401


def main() -> None:
    """Run a command, then leave without interpreter finalisation: the Temporal client's native
    runtime can abort the process while Python tears down, turning a clean exit into SIGABRT."""
    try:
        app()
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
