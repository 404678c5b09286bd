"""`refunds client ...`: API clients, software (a support agent, a help desk, an AI assistant) that
asks for refunds on a merchant's behalf with a key of its own."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from workers.cli_kit import app, configured_merchant, current_settings, fail, print_table, read_database, say

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
        list[str],
        typer.Option(
            help="CURRENCY:AMOUNT above which a human decides; or one AMOUNT for each budget's currency"
        ),
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
    --max-per-refund EUR:50.00 --daily-budget EUR:200.00"""
    from adapters.db import clients
    from adapters.db.engine import Database
    from domain.clients import (
        Client,
        ClientError,
        check_name,
        new_key,
        parse_budgets,
        parse_maxima,
        parse_reasons,
    )

    settings = current_settings()
    merchant_id = configured_merchant(settings, merchant)
    try:
        budgets = parse_budgets(daily_budget)
        client = Client(
            name=check_name(name),
            merchant_id=merchant_id,
            reasons=parse_reasons(reasons),
            maxima=parse_maxima(max_per_refund, budgets),
            budgets=budgets,
        )
    except ClientError as err:
        fail("invalid_client", err, 2)
    key = new_key()
    db = Database.connect(settings.database_url)
    try:
        with db.transaction() as session:
            created = clients.create(session, client, key)
    finally:
        db.dispose()
    if not created:
        fail("client_exists", f"a client named {name} exists (revoked names are not reused)")
    say(f"client {name} for merchant {merchant_id}; its key (shown once, give it to the client): {key}")


@client_app.command("list")
def client_list(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Every API client: merchant, reasons, limits, what is left of each daily budget, whether
    revoked (never a key).

    Example: refunds client list"""
    from datetime import UTC, datetime

    from adapters.db import clients
    from domain.money import format_minor

    db = read_database(current_settings())
    try:
        with db.transaction() as session:
            now = datetime.now(UTC)
            listed = [
                (entry, clients.standing(session, entry.client, now)) for entry in clients.listing(session)
            ]
    finally:
        db.dispose()
    if as_json:
        print(json.dumps([_listed(entry, standing) for entry, standing in listed], indent=2))
        return
    table = Table("client", "merchant", "reasons", "max per refund", "daily budget (left)", "state")
    rows = [
        (
            entry.client.name,
            entry.client.merchant_id,
            ",".join(entry.client.reasons),
            " ".join(f"{m.currency}:{format_minor(m.value, m.currency)}" for m in entry.client.maxima),
            " ".join(
                f"{b.budget.currency}:{format_minor(b.budget.value, b.budget.currency)}"
                f" ({format_minor(b.left.value, b.left.currency)})"
                for b in standing
            ),
            f"revoked {entry.revoked_at:%Y-%m-%d %H:%M}" if entry.revoked_at else "active",
        )
        for entry, standing in listed
    ]
    print_table(table, rows, "no API clients")


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
    from domain.clients import new_key

    key = new_key()
    until = datetime.now(UTC) + timedelta(hours=keep_old_key)
    db = read_database(current_settings())
    try:
        with db.transaction() as session:
            rotated = clients.rotate(session, name, key, until)
    finally:
        db.dispose()
    if rotated is None:
        fail("not_found", f"no active client {name}")
    if rotated.cut_short is not None:  # rotated again within the grace: that key stops now
        due = f"{rotated.cut_short:%Y-%m-%d %H:%M} UTC"
        say(f"the key before it, due to work until {due}, stopped working now")
    lapse = f"works until {until:%Y-%m-%d %H:%M} UTC" if keep_old_key else "stopped working now"
    say(f"client {name}'s old key {lapse}; its new key (shown once, give it to the client): {key}")


@client_app.command("revoke")
def client_revoke(name: str) -> None:
    """Revoke a client's key for good: its next request is refused (401); its refunds go on.

    Example: refunds client revoke helpdesk"""
    from adapters.db import clients

    db = read_database(current_settings())
    try:
        with db.transaction() as session:
            revoked = clients.revoke(session, name)
    finally:
        db.dispose()
    if not revoked:
        fail("not_found", f"no active client {name}")
    say(f"client {name} revoked")


def _listed(entry: Any, standing: Any) -> dict[str, Any]:
    """One client for scripts: amounts as minor units with their currency, as the API gives them."""
    return {
        "client": entry.client.name,
        "merchant": entry.client.merchant_id,
        "reasons": list(entry.client.reasons),
        "max_per_refund": [m.model_dump() for m in entry.client.maxima],
        "daily_budgets": [{"daily": b.budget.model_dump(), "left": b.left.model_dump()} for b in standing],
        "revoked_at": entry.revoked_at.isoformat() if entry.revoked_at else None,
    }
