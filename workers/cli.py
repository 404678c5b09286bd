"""`refunds`: run the product, sign requests, and steer refunds. The command groups of their own
(`client`, `fraud-warnings`, `risk`, `db`, `deploy`) register on the same app from their modules."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from domain import signature
from domain.status import Provider, RefundStatus
from workers.cli_kit import (
    app,
    asked,
    checked_settings,
    console,
    current_settings,
    fail,
    loaded,
    print_table,
    read_database,
    run_ops,
    say,
    where_from,
)
from workers.settings import Settings

if TYPE_CHECKING:
    pass


@app.command("payload-key")
def payload_key(key_id: str) -> None:
    """A new AES-256 key for workflow payloads: put it first in REFUNDS_PAYLOAD_KEYS to encrypt with
    it, keep the old ones after it so older histories still open.

    Example: refunds payload-key k2026"""
    from workers.codec import new_key_entry

    say(new_key_entry(key_id))


@app.command("reviewer-token")
def reviewer_token(name: str) -> None:
    """A new token for a reviewer, and the REFUNDS_REVIEWER_TOKENS entry (its hash) to configure.

    Example: refunds reviewer-token alice"""
    from domain.reviewer_tokens import new_reviewer_entry

    token, entry = new_reviewer_entry(name)
    say(f"token for {name} (give it to them, it is not stored): {token}")
    say(f"add to REFUNDS_REVIEWER_TOKENS: {entry}")


@app.command()
def dev() -> None:
    """Run everything on embedded defaults: Temporal + UI, sandbox, worker, service.

    Example: REFUNDS_HTTP_PORT=8001 refunds dev"""
    from workers.dev import run_dev

    environment = loaded(Settings).environment
    if environment != "dev":  # its children run as dev, on dev's secrets, against this database
        fail(
            "unsafe_settings",
            f"refunds dev runs on a development machine only: REFUNDS_ENVIRONMENT={environment}",
            2,
        )
    raise typer.Exit(run_dev(checked_settings(announce_policy=False)))


@app.command()
def worker() -> None:
    """Run the Temporal worker against REFUNDS_TEMPORAL_ADDRESS and REFUNDS_DATABASE_URL.

    Example: REFUNDS_ENVIRONMENT=production refunds worker"""
    from workers.worker import run_worker

    asyncio.run(run_worker(checked_settings(safe_start=True)))


@app.command()
def serve() -> None:
    """Run the webhook starter service (FastAPI, OpenAPI at /docs).

    Example: REFUNDS_ENVIRONMENT=production refunds serve"""
    from workers.listening import PortTaken
    from workers.service.app import serve as serve_http

    try:
        asyncio.run(serve_http(checked_settings(signs_decisions=True, safe_start=True)))
    except PortTaken as err:
        fail("port_in_use", err, 2)


@app.command()
def sandbox(
    port: Annotated[int, typer.Option(envvar="REFUNDS_SANDBOX_PORT", help="Port on 127.0.0.1")] = 12111,
    service_url: Annotated[
        str | None, typer.Option(help="The refunds service; signed events go to its /webhooks/<psp>")
    ] = None,
) -> None:
    """Run the PSP sandbox (Stripe's, Adyen's and PayPal's API paths) on loopback, state under
    REFUNDS_DATA_DIR.

    Example: refunds sandbox --port 12111"""
    try:
        from workers.sandbox import run_sandbox
    except ModuleNotFoundError as err:  # the image leaves the sandbox out: it is a dev and test tool
        if (err.name or "").partition(".")[0] != "sandbox":
            raise
        fail("not_installed", "the PSP sandbox is a development tool; install refunds from a checkout", 2)
    run_sandbox(current_settings(), port, service_url)


@app.command()
def mcp(
    http: Annotated[
        bool, typer.Option("--http", help="Streamable HTTP instead of stdio: each caller brings its key")
    ] = False,
    host: Annotated[str, typer.Option(envvar="REFUNDS_MCP_HOST", help="Where --http listens")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(envvar="REFUNDS_MCP_PORT", min=1, max=65535, help="Where --http listens")
    ] = 8765,
) -> None:
    """Serve an AI assistant over MCP as an API client: it asks the service at REFUNDS_SERVICE_URL
    for refunds within that client's scope, limits and budget. Over stdio the client is the one
    whose key is REFUNDS_CLIENT_KEY; over --http every request brings its own key as
    `Authorization: Bearer`, and an unknown or revoked key is refused with 401.

    Example: REFUNDS_CLIENT_KEY=rfc_... REFUNDS_SERVICE_URL=https://refunds.example.com refunds mcp"""
    from workers.mcp_server import KEY_VARIABLE, build_server, key_refusal, serve_stdio

    service_base = current_settings().service_base
    if http:
        from workers.listening import PortTaken
        from workers.mcp_http import serve_http

        try:
            run_ops(serve_http(service_base, host, port))
        except PortTaken as err:
            fail("port_in_use", err, 2)
        return
    key = os.environ.get(KEY_VARIABLE, "").strip()
    refusal = (
        key_refusal(service_base, key) if key else f"set {KEY_VARIABLE} to the key of `refunds client create`"
    )
    if refusal is not None:  # stdout is the protocol's: the one line goes to stderr
        print(f"unauthorized: {refusal}", file=sys.stderr)
        raise typer.Exit(2)
    serve_stdio(build_server(service_base, lambda _ctx: key))  # until the client goes: exit 0


@app.command()
def sign(
    body: Annotated[Path | None, typer.Option(help="File holding the exact body; stdin if omitted")] = None,
) -> None:
    """Print the Refund-Signature header value for a request body.

    Example: printf %s "$body" | refunds sign
    """
    try:
        raw = body.read_bytes() if body else sys.stdin.buffer.read()
    except OSError as err:
        fail("cannot_read", f"{body}: {err.strerror or err}", 2)
    print(signature.sign(current_settings().inbound_secrets, int(time.time()), raw))


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
    from workers.ops import ENDED, refund_view, wait_for_status

    settings = current_settings()
    if wait is None:
        view = run_ops(refund_view(settings, request_id))
    else:
        view = run_ops(wait_for_status(settings, request_id, wait, timeout))
    if view is None:
        fail("not_found", f"no refund {request_id} ({asked(settings)})")
    if as_json:
        print(json.dumps(view, indent=2, default=str))
    else:
        from workers.ops import render_refund

        render_refund(console, view)
    if wait is not None and view["status"] != wait.value:
        if RefundStatus(view["status"]) in ENDED:
            fail("not_reached", f"{request_id} has ended {view['status']}: it will not be {wait.value}")
        fail("timed_out", f"{request_id} is still {view['status']} after {timeout:g} s, not {wait.value}")


@app.command()
def audit(
    request_id: str,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """A refund's audit trail from the database: every step, actor, reason and PSP call.

    Example: refunds audit demo-1 --json"""
    from adapters.db import audit as audit_rows
    from workers.ops import render_audit

    settings = current_settings()
    db = read_database(settings)
    try:
        with db.transaction() as session:
            trail = [entry.model_dump(mode="json") for entry in audit_rows.trail(session, request_id)]
    finally:
        db.dispose()
    if not trail:
        fail("not_found", f"no audit trail for {request_id} (asked the database at {settings.database_url})")
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
    from workers.erp_export import ExportFormat, file_writer, write_batch

    try:
        export_format = ExportFormat(fmt)
    except ValueError:
        fail("invalid_format", f"{fmt!r} is not csv or jsonl", 2)
    if [out is not None, to_stdout, peek].count(True) != 1:
        fail(
            "choose_destination", "pass one of --out FILE, --stdout (both mark entries exported) or --peek", 2
        )

    def to_terminal(batch: outbox.ExportBatch) -> None:
        write_batch(batch, sys.stdout, export_format, header=True)
        sys.stdout.flush()

    db = read_database(current_settings())
    try:
        if peek:
            to_terminal(outbox.ExportBatch("(not exported)", outbox.peek(db, limit=limit)))
            return
        batch = outbox.export(db, file_writer(out, export_format) if out else to_terminal, limit=limit)
        previous = None if batch.entries else outbox.last_batch(db)
    except OSError as err:  # raised while writing: the claim rolled back, nothing is marked
        fail(
            "cannot_write", f"{out or 'standard output'}: {err.strerror or err}; nothing was marked exported"
        )
    finally:
        db.dispose()
    done = Console(stderr=True, markup=False, highlight=False)
    if batch.entries:
        done.print(f"exported {len(batch.entries)} ledger entries as batch {batch.batch_id}")
    else:
        done.print(f"nothing new to export since batch {previous}" if previous else "nothing to export yet")


REPORT_BYTES = 200_000_000  # a settlement report read at once: one payout batch is far smaller


@app.command("reconcile")
def reconcile_command(
    provider: Annotated[Provider, typer.Option(help="stripe, adyen or paypal")],
    since: Annotated[datetime, typer.Option(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"], help="UTC")],
    payment: Annotated[list[str] | None, typer.Option(help="Only this payment (repeatable)")] = None,
    merchant: Annotated[
        str | None, typer.Option(help="Whose PSP account and books (default: the default merchant)")
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(help="The PSP's own report of the window (Adyen: its Settlement details report CSV)"),
    ] = None,
    until: Annotated[
        datetime | None,
        typer.Option(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"], help="UTC; books up to here (default: now)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """The PSP's refunds against the books: missing on either side, amount or status differences.
    Exits 1 when anything differs. Adyen lists no refunds through its API: give its Settlement
    details report with --report, and the report's window with --since and --until.

    Example: refunds reconcile --provider stripe --since 2026-11-01 --json"""
    from rich.progress import Progress

    from adapters.db.engine import NoDatabase
    from adapters.psp.base import PspError
    from workers.reconcile import reconcile_provider

    start = since.replace(tzinfo=UTC) if since.tzinfo is None else since
    end = (until.replace(tzinfo=UTC) if until.tzinfo is None else until) if until else None
    text = None
    if report is not None:
        try:
            if report.stat().st_size > REPORT_BYTES:
                fail(
                    "report_too_large",
                    f"{report} is over {REPORT_BYTES // 1_000_000} MB: one batch per run",
                    2,
                )
            text = report.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as err:
            fail("cannot_read", f"{report}: {getattr(err, 'strerror', None) or err}", 2)
    with Progress(console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(f"{provider.value} refunds", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        settings = current_settings()
        try:
            found = reconcile_provider(
                settings, provider, start, payment or [], advance, merchant, report=text, until=end
            )
        except PspError as err:
            fail(err.code.value, err.message, 2)
        except NoDatabase:
            fail("no_database", f"no database at {settings.database_url}; {where_from(settings)}")
    if as_json:
        # typed for scripts: money as {value, currency}; the people's text columns are left out
        typed = [d.model_dump(mode="json", exclude={"ours", "theirs"}) for d in found]
        print(json.dumps(typed, indent=2))
    elif not found:
        say(f"{provider.value}: the books match the PSP since {start:%Y-%m-%d %H:%M}")
    else:
        rows = [
            (d.kind.value, d.psp_refund_id, d.payment_reference, d.request_id or "-", d.ours, d.theirs)
            for d in found
        ]
        print_table(Table("kind", "PSP refund", "payment", "request", "ours", "theirs"), rows, "")
    if found:
        raise typer.Exit(1)


# The other command groups register on the same app when imported: after this module's own, so
# `refunds --help` lists running the product first.
from workers import cli_steering, cli_clients, cli_warnings, cli_admin, cli_events  # noqa: E402, F401, I001


def unreachable(err: Exception) -> str | None:
    """`code: message` for a database or Temporal a command cannot reach or read its settings for;
    None for anything else (a bug keeps its traceback)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

    settings = current_settings()
    if isinstance(err, (NoSuchModuleError, ArgumentError)):
        return f"invalid_settings: REFUNDS_DATABASE_URL is no database URL this product can use ({err})"
    if isinstance(err, DBAPIError):
        try:
            where = make_url(settings.database_url).render_as_string(hide_password=True)
        except ArgumentError:
            where = "REFUNDS_DATABASE_URL"
        first = (
            str(err.orig or err).strip().splitlines()[0]
            if str(err.orig or err).strip()
            else type(err).__name__
        )
        return f"database_unavailable: the database at {where} cannot be used: {first}"
    if isinstance(err, RuntimeError) and "client connect" in str(err).lower():
        return (
            f"temporal_unavailable: Temporal at {settings.temporal_address} cannot be reached: start it "
            "(`refunds dev`), or set REFUNDS_TEMPORAL_ADDRESS"
        )
    return None


def main() -> None:
    """Run a command, then leave without interpreter finalisation: the Temporal client's native
    runtime can abort the process while Python tears down, turning a clean exit into SIGABRT."""
    try:
        app()
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except Exception as err:  # what the machine's state (not our code) makes fail: one line
        said = unreachable(err)
        if said is None:
            raise
        print(said, file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # its reader is gone (refunds mcp's client)
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
