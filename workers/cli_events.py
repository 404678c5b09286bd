"""`refunds events ...`: the merchant's endpoints that hear its refunds' events (subscribe, rotate a
secret, enable again), the events themselves and every attempt to deliver them (list, show,
redeliver, replay a time range), and `listen`, a receiver that verifies what arrives."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.table import Table

from workers.cli_kit import (
    app,
    configured_merchant,
    current_settings,
    fail,
    print_rows,
    print_table,
    read_database,
    say,
)

T = TypeVar("T")

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from adapters.db.engine import Database
    from adapters.db.outbound_events import KeptEvent
    from workers.settings import Settings

events_app = typer.Typer(
    help="Events to the merchant's own systems: endpoints, what was sent, redelivery.", no_args_is_help=True
)
endpoint_app = typer.Typer(
    help="The merchant's endpoints that hear its refunds' events.", no_args_is_help=True
)
app.add_typer(events_app, name="events")
events_app.add_typer(endpoint_app, name="endpoint")

MerchantOption = Annotated[str | None, typer.Option(help="The merchant (default: REFUNDS_MERCHANT_ID)")]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output")]


def _merchant_key(settings: Settings, merchant: str | None) -> tuple[str, str | None]:
    """The merchant named (or the default one) and how its events are kept (None: the default)."""
    named = configured_merchant(settings, merchant, " (REFUNDS_MERCHANTS_FILE)")
    return named, None if named == settings.merchant_id else named


def _writable(settings: Settings) -> Database:
    from adapters.db.engine import Database

    return Database.connect(settings.database_url)


def _written(change: Callable[[Session], T]) -> T:
    """`change` in one transaction of the database these settings name."""
    db = _writable(current_settings())
    try:
        with db.transaction() as session:
            return change(session)
    finally:
        db.dispose()


@endpoint_app.command("add")
def endpoint_add(
    url: str,
    types: Annotated[str, typer.Option(help="Event types it hears, comma-separated, or * for all")] = "*",
    merchant: MerchantOption = None,
) -> None:
    """Subscribe a URL to the merchant's events; its signing secret is shown once.

    Example: refunds events endpoint add https://erp.example.com/events --types refund.succeeded"""
    from adapters.db import event_endpoints
    from adapters.event_sender import EndpointRefused, check_url
    from domain.outbound_events import parse_types

    settings = current_settings()
    named, kept_as = _merchant_key(settings, merchant)
    try:
        checked = check_url(url, dev=settings.local_event_endpoints)
        wanted = parse_types(types)
    except EndpointRefused as err:
        fail(err.code, err, 2)
    except ValueError as err:
        fail("invalid_event_types", err, 2)
    endpoint, secret = _written(lambda session: event_endpoints.create(session, kept_as, checked, wanted))
    say(f"endpoint {endpoint.endpoint_id} for merchant {named} hears {', '.join(t.value for t in wanted)}")
    say(f"its signing secret (shown once; verify with the standardwebhooks package): {secret}")


@endpoint_app.command("list")
def endpoint_list(as_json: JsonOption = False) -> None:
    """Every endpoint: its merchant, URL, the types it hears, whether enabled, what it is owed.

    Example: refunds events endpoint list --json"""
    from adapters.db import event_endpoints, outbound_events

    settings = current_settings()
    db = read_database(settings)
    try:
        with db.transaction() as session:
            endpoints = event_endpoints.listing(session)
        owed = outbound_events.pending_count(db)
    finally:
        db.dispose()
    rows = [
        (
            e.endpoint_id,
            e.merchant or settings.merchant_id,
            e.url,
            ",".join(t.value for t in e.event_types),
            "enabled" if e.enabled else f"disabled: {e.disabled_reason or 'by hand'}",
            owed.get(e.endpoint_id, 0),
        )
        for e in endpoints
    ]
    print_rows(("endpoint", "merchant", "url", "types", "state", "owed"), rows, "no event endpoints", as_json)


@endpoint_app.command("rotate")
def endpoint_rotate(
    endpoint_id: str,
    grace_hours: Annotated[
        int, typer.Option(min=0, max=168, help="Hours the old secret still signs beside the new one")
    ] = 24,
    drop_previous: Annotated[
        bool, typer.Option("--drop-previous", help="End an earlier rotation's secret now (it still signs)")
    ] = False,
) -> None:
    """A new signing secret, shown once; the old one still signs (a second signature) for the grace.

    Example: refunds events endpoint rotate ep_0123456789abcdef --grace-hours 24"""
    from adapters.db import event_endpoints

    try:
        secret = _written(
            lambda session: event_endpoints.rotate(
                session, endpoint_id, timedelta(hours=grace_hours), drop_previous=drop_previous
            )
        )
    except event_endpoints.StillInGrace as err:
        fail("still_in_grace", f"{err}: rotate again after that, or pass --drop-previous to end it now")
    if secret is None:
        fail("not_found", f"no endpoint {endpoint_id}")
    say(f"endpoint {endpoint_id}: new signing secret (shown once): {secret}")
    say(f"the old secret signs beside it for {grace_hours} hours")


@endpoint_app.command("enable")
def endpoint_enable(endpoint_id: str) -> None:
    """Enable an endpoint again: everything it is owed is sent now, in order, with three new days.

    Example: refunds events endpoint enable ep_0123456789abcdef"""
    from adapters.db import event_endpoints

    done = _written(lambda session: event_endpoints.enable(session, endpoint_id))
    if not done:
        fail("not_found", f"no endpoint {endpoint_id}")
    say(f"endpoint {endpoint_id} enabled: what it is owed goes now")


@endpoint_app.command("disable")
def endpoint_disable(endpoint_id: str) -> None:
    """Stop sending to an endpoint; what it misses is kept for it until it is enabled again.

    Example: refunds events endpoint disable ep_0123456789abcdef"""
    from adapters.db import event_endpoints

    done = _written(lambda session: event_endpoints.disable(session, endpoint_id, "disabled by hand"))
    if not done:
        fail("not_found", f"no endpoint {endpoint_id}")
    say(f"endpoint {endpoint_id} disabled: its events are kept for it")


@events_app.command("list")
def events_list(
    refund: Annotated[str | None, typer.Option(help="Only this refund's (the merchant's request id)")] = None,
    endpoint: Annotated[str | None, typer.Option(help="Only events owed to this endpoint")] = None,
    merchant: MerchantOption = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many, newest first")] = 50,
    as_json: JsonOption = False,
) -> None:
    """The newest events and where each stands with each endpoint.

    Example: refunds events list --refund demo-1"""
    from adapters.db import outbound_events
    from domain.naming import refund_id

    settings = current_settings()
    kept = refund_id(_merchant_key(settings, merchant)[1], refund) if refund else None
    db = read_database(settings)
    try:
        with db.transaction() as session:
            found = outbound_events.recent(session, refund=kept, endpoint_id=endpoint, limit=limit)
    finally:
        db.dispose()
    if as_json:
        print(json.dumps([_event_object(event) for event in found], indent=2))
        return
    rows = [
        (e.event_id, e.event_type, e.refund, f"{e.created_at:%Y-%m-%d %H:%M:%S}", _delivery_summary(e))
        for e in found
    ]
    print_rows(("event", "type", "refund", "at", "deliveries"), rows, "no events", False)


@events_app.command("show")
def events_show(event_id: str, as_json: JsonOption = False) -> None:
    """One event: its body as signed and sent, and every attempt to deliver it.

    Example: refunds events show evt_0123456789abcdef0123456789abcdef"""
    from adapters.db import outbound_events

    db = read_database(current_settings())
    try:
        with db.transaction() as session:
            event = outbound_events.one(session, event_id)
            attempts = (
                [
                    a
                    for d in event.deliveries
                    for a in outbound_events.attempts_of(session, d.endpoint_id, event_id)
                ]
                if event
                else []
            )
    finally:
        db.dispose()
    if event is None:
        fail("not_found", f"no event {event_id}")
    if as_json:
        tried = [
            {
                "endpoint": a.endpoint_id,
                "at": a.at.isoformat(),
                "status_code": a.status_code,
                "latency_ms": a.latency_ms,
                "answer": a.answer,
            }
            for a in attempts
        ]
        print(json.dumps({**_event_object(event), "attempts": tried}, indent=2))
        return
    say(f"{event.event_id} {event.event_type} of {event.refund} at {event.created_at:%Y-%m-%d %H:%M:%S} UTC")
    say(json.dumps(json.loads(event.payload), indent=2))
    rows = [
        (
            a.endpoint_id,
            f"{a.at:%Y-%m-%d %H:%M:%S}",
            a.status_code or "-",
            f"{a.latency_ms} ms",
            a.answer[:120],
        )
        for a in attempts
    ]
    print_table(Table("endpoint", "at", "answer", "took", "said"), rows, "not attempted yet")


@events_app.command("redeliver")
def events_redeliver(
    event_id: str,
    endpoint: Annotated[
        str | None, typer.Option(help="Only to this endpoint (default: each it was owed to)")
    ] = None,
) -> None:
    """Send an event again, with its own id (a receiver that dedupes by webhook-id sees it once).

    Example: refunds events redeliver evt_0123456789abcdef0123456789abcdef"""
    from adapters.db import outbound_events

    db = _writable(current_settings())
    try:
        count = outbound_events.redeliver(db, event_id, endpoint, datetime.now(UTC))
    finally:
        db.dispose()
    if count == 0:
        fail("not_found", f"no event {event_id}" + (f" owed to {endpoint}" if endpoint else ""))
    say(f"{event_id} goes again to {count} endpoint{'s' if count > 1 else ''}")


@events_app.command("replay")
def events_replay(
    endpoint: Annotated[str, typer.Option(help="The endpoint to send them to")],
    since: Annotated[str, typer.Option(help="From this time (ISO 8601, UTC unless it says otherwise)")],
    until: Annotated[str | None, typer.Option(help="Up to this time (default: now)")] = None,
) -> None:
    """Send an endpoint every event of its merchant's, of the types it hears, made in a time range,
    in their order (those from before it was added too).

    Example: refunds events replay --endpoint ep_0123456789abcdef --since 2026-12-01"""
    from adapters.db import event_endpoints, outbound_events

    start, end = _when(since, "since"), _when(until, "until") if until else datetime.now(UTC)
    if end <= start:
        fail(
            "invalid_range",
            f"--until ({end:%Y-%m-%d %H:%M}) is not after --since ({start:%Y-%m-%d %H:%M})",
            2,
        )
    db = _writable(current_settings())
    try:
        with db.transaction() as session:
            known = event_endpoints.get(session, endpoint) is not None
        count = outbound_events.replay(db, endpoint, start, end, datetime.now(UTC)) if known else 0
    finally:
        db.dispose()
    if not known:
        fail("not_found", f"no endpoint {endpoint}")
    say(f"{count} event{'' if count == 1 else 's'} go to {endpoint} again, in order")


@events_app.command("secret")
def events_secret() -> None:
    """A new signing secret for an endpoint declared in the merchants file (`secret = "whsec_..."`).

    Example: refunds events secret"""
    from adapters.db.event_endpoints import new_secret

    print(new_secret())


@events_app.command("listen")
def events_listen(
    secret: Annotated[str, typer.Option(envvar="REFUNDS_EVENTS_SECRET", help="The endpoint's whsec_ secret")],
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on (127.0.0.1)")] = 8780,
) -> None:
    """A receiver for trying events out: verifies each with the standardwebhooks package and prints
    it; subscribe it with `refunds events endpoint add http://127.0.0.1:PORT/` (dev).

    Example: refunds events listen --secret whsec_... --port 8780"""
    from workers.event_listener import listen

    listen(secret, port)


def _when(given: str, option: str) -> datetime:
    try:
        at = datetime.fromisoformat(given)
    except ValueError:
        fail("invalid_time", f"--{option} {given!r} is not an ISO 8601 date or time", 2)
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def _delivery_summary(event: KeptEvent) -> str:
    if not event.deliveries:
        return "no endpoint hears it"
    return "; ".join(
        f"{d.endpoint_id}: {d.state}" + (f" after {d.attempts} attempts" if d.attempts > 1 else "")
        for d in event.deliveries
    )


def _event_object(event: KeptEvent) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "type": event.event_type,
        "refund": event.refund,
        "created_at": event.created_at.isoformat(),
        "payload": json.loads(event.payload),
        "deliveries": [
            {
                "endpoint": d.endpoint_id,
                "state": d.state,
                "attempts": d.attempts,
                "next_attempt_at": d.next_attempt_at.isoformat() if d.next_attempt_at else None,
                "delivered_at": d.delivered_at.isoformat() if d.delivered_at else None,
            }
            for d in event.deliveries
        ],
    }
