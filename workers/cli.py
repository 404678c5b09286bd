"""`refunds`: run the product, sign requests, and steer refunds."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from temporalio.service import RPCError

from domain import signature
from domain.contracts import RetryInput, ReviewInput
from domain.naming import workflow_id
from domain.status import Provider
from workers.settings import Settings

if TYPE_CHECKING:
    from domain.returns import ReceiptLine
    from workers.versioning import DeploymentView

T = TypeVar("T")

app = typer.Typer(help="Refund automation on Temporal.", no_args_is_help=True)
console = Console()


def _settings() -> Settings:
    """The settings, or one line naming what is wrong with them: never a traceback, which would
    print every value given (the secrets among them) into the log."""
    from pydantic import ValidationError

    try:
        return Settings()
    except ValidationError as err:
        console.print(
            f"[red]invalid_settings[/red]: {escape(_settings_problem(err))}", highlight=False, soft_wrap=True
        )
        raise typer.Exit(2) from None


def _settings_problem(err: Any) -> str:
    """What a settings ValidationError says, without the values it was given."""
    problems = []
    for error in err.errors(include_url=False, include_input=False, include_context=False):
        name = "_".join(str(part) for part in error["loc"]).upper()
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append(f"REFUNDS_{name}: {message}" if name else message)
    return "; ".join(problems)


def _identity(given: str | None) -> str:
    """Who the CLI acts as: the option, else REFUNDS_OPERATOR; never anonymous."""
    who = (given or _settings().operator).strip()
    if not who:
        console.print("[red]unauthorized[/red]: pass --reviewer/--operator or set REFUNDS_OPERATOR")
        raise typer.Exit(2)
    return who


@app.command("payload-key")
def payload_key(key_id: str) -> None:
    """A new AES-256 key for workflow payloads: put it first in REFUNDS_PAYLOAD_KEYS to encrypt with
    it, keep the old ones after it so older histories still open."""
    from workers.codec import new_key_entry

    console.print(new_key_entry(key_id), highlight=False)


@app.command("reviewer-token")
def reviewer_token(name: str) -> None:
    """A new token for a reviewer, and the REFUNDS_REVIEWER_TOKENS entry (its hash) to configure."""
    from domain.reviewer_tokens import new_reviewer_entry

    token, entry = new_reviewer_entry(name)
    console.print(f"token for {name} (give it to them, it is not stored): {token}", highlight=False)
    console.print(f"add to REFUNDS_REVIEWER_TOKENS: {entry}", highlight=False)


def _checked_settings(*, signs_decisions: bool = False, safe_start: bool = False) -> Settings:
    """Settings for a long-running process: a bad policy file stops it before it starts anything."""
    from domain.policy_file import PolicyError

    settings = _settings()
    if safe_start:
        from workers.safety import start_problem, start_warning

        problem = start_problem(settings)
        if problem is not None:
            console.print(f"[red]unsafe_settings[/red]: {escape(problem)}", highlight=False, soft_wrap=True)
            raise typer.Exit(2)
        warning = start_warning(settings)
        if warning is not None:
            console.print(f"[yellow]warning[/yellow]: {escape(warning)}", highlight=False, soft_wrap=True)
    try:
        policy = settings.policy()
        settings.risk_model()
        if signs_decisions:
            settings.decision_key()
        for profile in settings.merchant_profiles().values():  # each merchant's policy must load too
            settings.model_copy(update={"policy_file": profile.policy_file}).policy()
    except PolicyError as err:
        console.print(f"[red]invalid_policy[/red]: {err}")
        raise typer.Exit(2) from err
    console.print(f"refund policy {policy.version}", highlight=False)
    from workers.logs import configure_logging

    configure_logging(settings.log_format)
    return settings


def _run(operation: Coroutine[Any, Any, T]) -> T:
    """Run an ops call; Temporal being down or refusing is a one-line error, not a traceback."""
    try:
        return asyncio.run(operation)
    except RPCError as err:
        console.print(f"[red]temporal_error[/red]: {err.message}")
    except RuntimeError as err:  # the client could not connect
        console.print(f"[red]temporal_unavailable[/red]: {err}")
    raise typer.Exit(1)


@app.command()
def dev() -> None:
    """Run everything on embedded defaults: Temporal + UI, sandbox, worker, service."""
    from workers.dev import run_dev

    raise typer.Exit(run_dev(_checked_settings()))


@app.command()
def worker() -> None:
    """Run the Temporal worker against REFUNDS_TEMPORAL_ADDRESS and REFUNDS_DATABASE_URL."""
    from workers.worker import run_worker

    asyncio.run(run_worker(_checked_settings(safe_start=True)))


@app.command()
def serve() -> None:
    """Run the webhook starter service (FastAPI, OpenAPI at /docs)."""
    from workers.service.app import serve as serve_http

    asyncio.run(serve_http(_checked_settings(signs_decisions=True, safe_start=True)))


@app.command()
def sandbox(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1")] = 12111,
    service_url: Annotated[
        str | None, typer.Option(help="The refunds service; signed events go to its /webhooks/<psp>")
    ] = None,
) -> None:
    """Run the PSP sandboxes (Stripe's and Adyen's API paths) on loopback, state under REFUNDS_DATA_DIR."""
    from workers.sandbox import run_sandbox

    run_sandbox(_settings(), port, service_url)


@app.command()
def sign(
    body: Annotated[Path | None, typer.Option(help="File holding the exact body; stdin if omitted")] = None,
) -> None:
    """Print the Refund-Signature header value for a request body."""
    raw = body.read_bytes() if body else sys.stdin.buffer.read()
    print(signature.sign(_settings().inbound_secrets, int(time.time()), raw))


@app.command()
def status(
    request_id: str,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Show a refund: status, amounts, PSP refund id, risk, review and audit trail."""
    from workers.ops import refund_view

    view = _run(refund_view(_settings(), request_id))
    if view is None:
        console.print(f"[red]no refund {request_id}[/red]")
        raise typer.Exit(1)
    if as_json:
        print(json.dumps(view, indent=2, default=str))
        return
    from workers.ops import render_refund

    render_refund(console, view)


@app.command()
def audit(
    request_id: str,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """A refund's audit trail from the database: every step, actor, reason and PSP call."""
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
        console.print(f"[red]not_found[/red]: no audit trail for {request_id}")
        raise typer.Exit(1)
    if as_json:
        print(json.dumps(trail, indent=2))
        return
    render_audit(console, trail)


@app.command("export")
def export_ledger(
    fmt: Annotated[str, typer.Option("--format", help="csv or jsonl")] = "jsonl",
    out: Annotated[Path | None, typer.Option(help="Append to this file (default: standard output)")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many entries")] = 10_000,
) -> None:
    """Ledger entries not yet exported, for the ERP: each entry leaves once (see the README)."""
    from adapters.db import outbox
    from adapters.db.engine import Database
    from workers.erp_export import ExportFormat, file_writer, write_batch

    try:
        export_format = ExportFormat(fmt)
    except ValueError:
        console.print(f"[red]invalid_format[/red]: {fmt!r} is not csv or jsonl")
        raise typer.Exit(2) from None
    if out is not None:
        writer = file_writer(out, export_format)
    else:

        def writer(batch: outbox.ExportBatch) -> None:
            write_batch(batch, sys.stdout, export_format, header=True)
            sys.stdout.flush()

    db = Database.connect(_settings().database_url)
    try:
        batch = outbox.export(db, writer, limit=limit)
    finally:
        db.dispose()
    Console(stderr=True).print(f"exported {len(batch.entries)} ledger entries as batch {batch.batch_id}")


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
    Exits 1 when anything differs."""
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
            console.print(f"[red]{err.code.value}[/red]: {err.message}")
            raise typer.Exit(2) from err
    if as_json:
        print(json.dumps([d.model_dump(mode="json") for d in found], indent=2))
    elif not found:
        console.print(f"{provider.value}: the books match the PSP since {start:%Y-%m-%d %H:%M}")
    else:
        table = Table("kind", "PSP refund", "payment", "request", "ours", "theirs")
        for d in found:
            table.add_row(
                d.kind.value, d.psp_refund_id, d.payment_reference, d.request_id or "-", d.ours, d.theirs
            )
        console.print(table)
    if found:
        raise typer.Exit(1)


@app.command()
def pending(
    merchant: Annotated[str | None, typer.Option(help="Only this merchant's refunds")] = None,
) -> None:
    """List refunds awaiting review."""
    from workers.ops import SteerError, pending_reviews

    try:
        rows = _run(pending_reviews(_settings(), merchant))
    except SteerError as err:
        console.print(f"[red]{err.code}[/red]: {err}")
        raise typer.Exit(2) from err
    table = Table("request id", "amount", "risk", "reasons", "approvals", "waiting since", "escalated")
    for row in rows:
        table.add_row(*row)
    console.print(table if rows else "no refunds awaiting review")


@app.command()
def attention() -> None:
    """List refunds ops must act on: needs_attention, and refunds the PSP failed after success."""
    from workers.ops import needing_attention

    rows = _run(needing_attention(_settings()))
    table = Table("request id", "state", "why")
    for row in rows:
        table.add_row(*row)
    console.print(table if rows else "nothing needs attention")


_TOKEN_HELP = "Your reviewer token (default REFUNDS_REVIEWER_TOKEN; in dev, the dev reviewer's)"
_REVIEWER_HELP = "Who you are: refused unless the token is theirs (the token decides who acts)"


@app.command()
def approve(
    request_id: str,
    reviewer: Annotated[str | None, typer.Option(help=_REVIEWER_HELP)] = None,
    reason: Annotated[str, typer.Option(help="Optional note")] = "",
    token: Annotated[str | None, typer.Option(help=_TOKEN_HELP)] = None,
) -> None:
    """Approve a refund awaiting review, as the reviewer your token proves (through the service)."""
    _decide(request_id, "approve", reason, token, reviewer)


@app.command()
def reject(
    request_id: str,
    reason: Annotated[str, typer.Option(help="Why (required)")],
    reviewer: Annotated[str | None, typer.Option(help=_REVIEWER_HELP)] = None,
    token: Annotated[str | None, typer.Option(help=_TOKEN_HELP)] = None,
) -> None:
    """Reject a refund awaiting review; no money moves."""
    _decide(request_id, "reject", reason, token, reviewer)


def _decide(request_id: str, verdict: str, reason: str, token: str | None, reviewer: str | None) -> None:
    from workers.review_client import ReviewError, decide, reviewer_token

    settings = _settings()
    try:
        state = decide(settings, request_id, verdict, reason, reviewer_token(settings, token), reviewer)
    except ReviewError as err:
        console.print(f"[red]{err.code}[/red]: {escape(str(err))}")
        raise typer.Exit(2 if err.code == "unauthorized" else 1) from err
    approvals = len(state.get("approvals") or [])
    console.print(f"{request_id}: {state['status']} ({approvals} approval(s))", highlight=False)


@app.command()
def retry(
    request_id: str,
    operator: Annotated[str | None, typer.Option(help="Who asks (default REFUNDS_OPERATOR)")] = None,
) -> None:
    """Retry a refund that needs attention (after the cause was fixed)."""
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
    """Report returned goods received: their sellable units are restocked, once."""
    from pydantic import ValidationError

    from domain.returns import GoodsReceipt, ReturnsState
    from workers.ops import SteerError, steer

    try:
        lines = [_receipt_line(text) for text in line]
        goods = GoodsReceipt(
            receipt_id=receipt, lines=lines, received_by=_identity(operator), request_id=request_id
        )
    except (ValueError, ValidationError) as err:
        console.print(f"[red]invalid_request[/red]: {err}")
        raise typer.Exit(2) from err
    try:
        state = _run(steer(_settings(), workflow_id(request_id), "goods_received", goods, ReturnsState))
    except SteerError as err:
        console.print(f"[red]{err.code}[/red]: {err}")
        raise typer.Exit(1) from err
    console.print(f"{request_id}: returns {state.status.value}, received {state.received}")


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
    operator: Annotated[str, typer.Option(help="Who decided the dispute allows refunds again")],
) -> None:
    """Lift a dispute hold on a payment; then `refunds retry` the refunds that wait on it."""
    from adapters.db import holds
    from adapters.db.engine import Database

    db = Database.connect(_settings().database_url)
    try:
        released = holds.release_hold(db, provider, payment_reference, operator)
    finally:
        db.dispose()
    if not released:
        console.print(f"[red]not_found[/red]: no open hold on {provider.value} {payment_reference}")
        raise typer.Exit(1)
    console.print(f"hold on {provider.value} {payment_reference} released by {operator}")


risk_app = typer.Typer(help="The risk model.", no_args_is_help=True)
app.add_typer(risk_app, name="risk")


@risk_app.command("train")
def risk_train(
    out: Annotated[Path | None, typer.Option(help="Directory for the model (default: data dir)")] = None,
    min_samples: Annotated[int, typer.Option(min=4, help="Decisions needed at least")] = 20,
) -> None:
    """Fit a model on past review decisions, report its quality on held-out ones, save it."""
    from adapters.db.engine import Database
    from workers.risk_training import TrainingError, train

    settings = _settings()
    db = Database.connect(settings.database_url)
    try:
        report = train(db, out or settings.data_dir / "models", min_samples=min_samples)
    except TrainingError as err:
        console.print(f"[red]not_enough_data[/red]: {err}")
        raise typer.Exit(1) from err
    finally:
        db.dispose()
    metrics = ", ".join(f"{k} {v}" for k, v in report.model.metrics.items())
    console.print(
        f"trained {report.model.version} on {report.samples} decisions ({report.rejections} rejected)"
    )
    console.print(f"held-out quality: {metrics}", highlight=False)
    console.print(f"use it: REFUNDS_RISK_MODEL_FILE={report.path}", highlight=False)


db_app = typer.Typer(help="The product's database.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision")] = "head",
) -> None:
    """Apply the database migrations (services also apply them at start)."""
    from adapters.db import migrate
    from adapters.db.engine import make_engine

    engine = make_engine(_settings().database_url)
    try:
        before = migrate.current_revision(engine)
        after = migrate.upgrade(engine, revision)
    except migrate.UnversionedDatabase as err:
        console.print(f"[red]unversioned_database[/red]: {err}")
        raise typer.Exit(1) from err
    finally:
        engine.dispose()
    console.print(f"database at revision {after} (was {before or 'empty'})")


@db_app.command("current")
def db_current() -> None:
    """The database's migration revision and the newest one this version knows."""
    from adapters.db import migrate
    from adapters.db.engine import make_engine

    engine = make_engine(_settings().database_url)
    try:
        console.print(
            f"database {migrate.current_revision(engine) or 'empty'}, newest {migrate.head_revision()}"
        )
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
    or ramp it. Promoting the previous build again is the rollback."""
    from workers.temporal import connect
    from workers.versioning import promote

    settings = _settings()

    async def run() -> None:
        await promote(await connect(settings), settings, build_id, ramp)

    _run(run())
    share = f"{ramp}% of new refunds" if ramp is not None else "current"
    console.print(f"{settings.deployment_name}: build {build_id} {share}")


@deploy_app.command("status")
def deploy_status() -> None:
    """The deployment's builds: current, ramping, draining (refunds still on it) or drained."""
    from workers.temporal import connect
    from workers.versioning import describe

    settings = _settings()

    async def run() -> DeploymentView:
        return await describe(await connect(settings), settings)

    view = _run(run())
    ramping = f", ramping {view.ramping} at {view.ramp_percentage}%" if view.ramping else ""
    console.print(f"{view.name}: current {view.current or 'unversioned'}{ramping}")
    table = Table("build", "status", "drainage")
    for build in view.builds:
        table.add_row(build.build_id, build.status, build.drainage)
    console.print(table)


def _steer(request_id: str, update: str, argument: ReviewInput | RetryInput) -> None:
    from domain.contracts import RefundState
    from workers.ops import SteerError, steer

    try:
        state = _run(steer(_settings(), workflow_id(request_id), update, argument, RefundState))
    except SteerError as err:
        console.print(f"[red]{err.code}[/red]: {err}")
        raise typer.Exit(1) from err
    console.print(f"{request_id}: {state.status.value}")


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
