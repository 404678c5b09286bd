"""Events to the merchant's own systems: born with the audit row that announces them, signed per
Standard Webhooks, delivered at least once and in order per refund, retried for three days, and
never sent where an endpoint must not point."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from adapters.db import audit, event_endpoints, outbound_events
from adapters.db.engine import Database
from adapters.event_sender import EndpointRefused, EventSender, check_url
from domain.contracts import AuditEvent
from domain.outbound_events import RETRY_WINDOW, EventType, parse_types, retry_after
from domain.status import RefundStatus
from tests.event_receiver import Receiver, receiver
from tests.helpers import unique
from workers.event_relay import EventRelay

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self, at: datetime = T0) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def _status(key: str, before: RefundStatus, after: RefundStatus, *, at: datetime = T0) -> AuditEvent:
    return AuditEvent(
        key=key, step="status_changed", actor="system", status_before=before, status_after=after, at=at
    )


def _refund_steps(refund: str, db: Database, *, at: datetime = T0) -> None:
    """A refund's life as the audit trail writes it: received, held, approved, paid."""
    steps = [
        AuditEvent(
            key="validate:1:verdict",
            step="validated",
            actor="system",
            detail={"amount": "2500", "currency": "EUR"},
            at=at,
        ),
        _status("wf:1", RefundStatus.SCORING, RefundStatus.AWAITING_REVIEW, at=at),
        _status("wf:2", RefundStatus.AWAITING_REVIEW, RefundStatus.REFUNDING, at=at),
        _status("wf:3", RefundStatus.REFUNDING, RefundStatus.SUCCEEDED, at=at),
    ]
    for step in steps:  # each step in its own transaction, as the activities write them
        with db.transaction() as session:
            audit.record(session, refund, "pi_1", [step])


def _endpoint(db: Database, merchant: str, url: str, types: str = "*") -> tuple[str, str]:
    with db.transaction() as session:
        endpoint, secret = event_endpoints.create(session, merchant, url, parse_types(types))
    return endpoint.endpoint_id, secret


async def _relay_until_quiet(relay: EventRelay, rounds: int = 20) -> None:
    """Relay passes until nothing is left due now (the relay's own loop, run by hand)."""
    for _ in range(rounds):
        await relay.relay_once()
        await relay.drain()


def _verified(got: Receiver, secret: str) -> list[dict[str, object]]:
    return [Webhook(secret).verify(request.body, request.headers) for request in got.received]


async def test_each_step_is_announced_once_signed_and_in_order(db: Database) -> None:
    merchant = unique("shop")
    refund = f"{merchant}~r1"
    with receiver() as got:
        _, secret = _endpoint(db, merchant, got.url)
        _refund_steps(refund, db)
        _refund_steps(refund, db)  # every step written again (activity retries): nothing new
        sender = EventSender(dev=True)
        relay = EventRelay(db, sender, Clock(datetime.now(UTC)))
        await _relay_until_quiet(relay)
        await sender.aclose()
    events = _verified(got, secret)
    assert [event["type"] for event in events] == [
        "refund.received",
        "refund.awaiting_review",
        "refund.succeeded",
    ]
    assert len(set(got.ids())) == 3 and [e["id"] for e in events] == got.ids()
    received = events[0]["data"]
    assert received == {"refund": {**received["refund"]}}  # type: ignore[index]
    assert received["refund"]["request_id"] == "r1"  # type: ignore[index]  # the merchant's own id
    assert received["refund"]["amount"] == {"value": 2500, "currency": "EUR"}  # type: ignore[index]
    assert events[2]["data"]["previous_status"] == "refunding"  # type: ignore[index]


async def test_a_failing_endpoint_holds_back_that_refund_alone_and_is_retried_with_backoff(
    db: Database,
) -> None:
    merchant = unique("shop")
    clock = Clock(datetime.now(UTC))
    with receiver() as got:
        _, secret = _endpoint(db, merchant, got.url)
        _refund_steps(f"{merchant}~a", db, at=clock.at)
        _refund_steps(f"{merchant}~b", db, at=clock.at)
        got.answers = [500]  # the first delivery (a's received) fails once
        sender = EventSender(dev=True)
        relay = EventRelay(db, sender, clock)
        await _relay_until_quiet(relay)
        first_pass = [(e["type"], e["data"]["refund"]["request_id"]) for e in _verified(got, secret)]  # type: ignore[index]
        clock.at += retry_after(1)
        await _relay_until_quiet(relay)
        await sender.aclose()
    # b went on while a waited; a's events came after its retry, still in a's order
    assert first_pass == [
        ("refund.received", "a"),
        ("refund.received", "b"),
        ("refund.awaiting_review", "b"),
        ("refund.succeeded", "b"),
    ]
    delivered = [(e["type"], e["data"]["refund"]["request_id"]) for e in _verified(got, secret)][4:]  # type: ignore[index]
    assert delivered == [("refund.received", "a"), ("refund.awaiting_review", "a"), ("refund.succeeded", "a")]


async def test_an_endpoint_failing_for_three_days_is_disabled_and_gets_everything_when_enabled(
    db: Database,
) -> None:
    merchant = unique("shop")
    clock = Clock(datetime.now(UTC))
    with receiver() as got:
        endpoint_id, secret = _endpoint(db, merchant, got.url, "refund.succeeded")
        _refund_steps(f"{merchant}~r", db, at=clock.at)
        got.answers = [503] * 1000
        sender = EventSender(dev=True)
        relay = EventRelay(db, sender, clock)
        started = clock.at
        while not relay.disabled and clock.at - started <= RETRY_WINDOW + timedelta(hours=2):
            await _relay_until_quiet(relay, rounds=1)
            clock.at += timedelta(minutes=30)
        attempts = len(got.received)
        with db.transaction() as session:
            shown = event_endpoints.get(session, endpoint_id)
        assert relay.disabled == [endpoint_id] and shown is not None and not shown.enabled
        assert shown.disabled_reason is not None and "answered 503" in shown.disabled_reason
        await _relay_until_quiet(relay)  # disabled: nothing more is sent
        assert len(got.received) == attempts
        got.answers = []
        with db.transaction() as session:
            event_endpoints.enable(session, endpoint_id, clock.at)
        await _relay_until_quiet(relay)
        await sender.aclose()
    assert [e["type"] for e in _verified(got, secret)][-1] == "refund.succeeded"
    assert got.ids()[-1] == got.ids()[0]  # the same event, the same webhook-id, at last delivered
    assert outbound_events.pending_count(db).get(endpoint_id, 0) == 0


async def test_a_rotated_secret_signs_beside_the_new_one_until_its_grace_ends(db: Database) -> None:
    merchant = unique("shop")
    clock = Clock(datetime.now(UTC))
    with receiver() as got:
        endpoint_id, old = _endpoint(db, merchant, got.url, "refund.received")
        with db.transaction() as session:
            new = event_endpoints.rotate(session, endpoint_id, timedelta(hours=24), clock.at)
        assert new is not None and new != old
        _refund_steps(f"{merchant}~in-grace", db, at=clock.at)
        sender = EventSender(dev=True)
        relay = EventRelay(db, sender, clock)
        await _relay_until_quiet(relay)
        clock.at += timedelta(hours=25)
        _refund_steps(f"{merchant}~after", db, at=clock.at)
        await _relay_until_quiet(relay)
        await sender.aclose()
    in_grace, after = got.received
    for secret in (old, new):
        Webhook(secret).verify(
            in_grace.body, {**in_grace.headers, "webhook-timestamp": in_grace.headers["webhook-timestamp"]}
        )
    Webhook(new).verify(after.body, after.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(after.body, after.headers)


async def test_two_relays_at_once_deliver_each_event_once(db: Database) -> None:
    merchant = unique("shop")
    with receiver() as got:
        _endpoint(db, merchant, got.url)
        for n in range(10):
            _refund_steps(f"{merchant}~r{n}", db)
        senders = [EventSender(dev=True), EventSender(dev=True)]
        relays = [EventRelay(db, sender) for sender in senders]
        await asyncio.gather(*(_relay_until_quiet(relay) for relay in relays))
        for sender in senders:
            await sender.aclose()
    assert len(got.ids()) == 30 and len(set(got.ids())) == 30


async def test_a_redirect_is_not_followed_and_counts_as_a_failure(db: Database) -> None:
    merchant = unique("shop")
    clock = Clock(datetime.now(UTC))
    with receiver() as elsewhere, receiver() as got:
        endpoint_id, _ = _endpoint(db, merchant, got.url, "refund.received")
        got.answers, got.location = [302], elsewhere.url
        _refund_steps(f"{merchant}~r", db, at=clock.at)
        sender = EventSender(dev=True)
        await _relay_until_quiet(EventRelay(db, sender, clock))
        await sender.aclose()
    assert len(got.received) == 1 and elsewhere.received == []
    assert outbound_events.pending_count(db)[endpoint_id] == 1


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://hooks.example.com/x", "insecure_url"),
        ("https://10.0.0.8/x", "private_address"),
        ("https://127.0.0.1/x", "private_address"),
        ("https://169.254.169.254/latest/meta-data", "private_address"),
        ("https://[::1]/x", "private_address"),
        ("https://[::ffff:10.0.0.1]/x", "private_address"),
        ("https://user:pw@hooks.example.com/x", "invalid_url"),
        ("ftp://hooks.example.com/x", "insecure_url"),
        ("https:///x", "invalid_url"),
        ("https://[64:ff9b::a9fe:a9fe]/", "private_address"),  # NAT64 to 169.254.169.254
        ("https://[64:ff9b:1::a00:1]/", "private_address"),
        ("https://[2002:a9fe:a9fe::]/", "private_address"),  # 6to4
        ("https://[::ffff:0:a00:1]/", "private_address"),  # IPv4-translated 10.0.0.1
        ("https://hooks.example.com:-1/x", "invalid_url"),
        ("https://hooks.example.com:abc/x", "invalid_url"),
        ("https://hooks.example.com:0/x", "invalid_url"),
        ("https://[::1/x", "invalid_url"),
    ],
)
def test_outside_dev_an_endpoint_must_be_https_and_public(url: str, code: str) -> None:
    with pytest.raises(EndpointRefused) as refused:
        check_url(url, dev=False)
    assert refused.value.code == code
    assert check_url("https://hooks.example.com/refunds", dev=False) == "https://hooks.example.com/refunds"
    assert check_url("https://bücher.example/x", dev=False) == "https://bücher.example/x"  # sent in IDNA


async def test_outside_dev_a_name_that_resolves_to_a_private_address_is_never_called(db: Database) -> None:
    """`localhost` passes the URL check (a name) and resolves to loopback: the sender refuses it at
    the connection, so a name cannot reach what an address literal could not."""
    merchant = unique("shop")
    clock = Clock(datetime.now(UTC))
    with receiver() as got:
        named = got.url.replace("http://127.0.0.1", "https://localhost")
        endpoint_id, _ = _endpoint(db, merchant, named, "refund.received")
        _refund_steps(f"{merchant}~r", db, at=clock.at)
        sender = EventSender(dev=False)
        await _relay_until_quiet(EventRelay(db, sender, clock))
        await sender.aclose()
    assert got.received == []
    with db.transaction() as session:
        shown = outbound_events.attempts_of(session, endpoint_id)
    assert [attempt.status_code for attempt in shown] == [None]
    assert shown[0].answer.startswith("private_address")


def test_a_merchant_hears_only_its_own_refunds(db: Database) -> None:
    mine, theirs = unique("shop"), unique("shop")
    endpoint_id, _ = _endpoint(db, mine, "http://127.0.0.1:9/x")
    _refund_steps(f"{theirs}~r", db)
    _refund_steps(f"{mine}~r", db)
    assert outbound_events.pending_count(db)[endpoint_id] == 3
    with db.transaction() as session:
        owed = outbound_events.owed_to(session, endpoint_id)
    assert {json.loads(event.payload)["data"]["refund"]["request_id"] for event in owed} == {"r"}
    assert {event.refund for event in owed} == {f"{mine}~r"}


def test_event_types_are_parsed_strictly() -> None:
    assert parse_types("*") == tuple(EventType)
    assert parse_types("refund.succeeded, refund.succeeded,ledger.posted") == (
        EventType.REFUND_SUCCEEDED,
        EventType.LEDGER_POSTED,
    )
    for bad in ("", "refund.paid", "refund.succeeded,*"):
        with pytest.raises(ValueError):
            parse_types(bad)


async def test_two_relays_keep_each_refunds_events_in_order(db: Database) -> None:
    """Before (PostgreSQL): one relay's row locks made the other skip a refund's first event and send
    its later ones, in 7 of 15 runs. An endpoint is now served by one relay at a time."""
    merchant = unique("shop")
    with receiver() as got:
        endpoint_id, secret = _endpoint(db, merchant, got.url)
        with db.transaction() as session:
            event_endpoints.disable(session, endpoint_id, "by hand")  # a backlog builds up
        for n in range(40):
            _refund_steps(f"{merchant}~r{n}", db)
        with db.transaction() as session:
            event_endpoints.enable(session, endpoint_id)
        senders = [EventSender(dev=True), EventSender(dev=True)]
        relays = [EventRelay(db, sender) for sender in senders]
        await asyncio.gather(*(_relay_until_quiet(relay, rounds=40) for relay in relays))
        for sender in senders:
            await sender.aclose()
    seen: dict[str, list[str]] = {}
    for event in _verified(got, secret):
        seen.setdefault(event["data"]["refund"]["request_id"], []).append(str(event["type"]))  # type: ignore[index]
    assert len(seen) == 40
    assert {tuple(types) for types in seen.values()} == {
        ("refund.received", "refund.awaiting_review", "refund.succeeded")
    }


async def test_an_answer_with_a_nul_is_kept_and_delivers(db: Database) -> None:
    """Before (PostgreSQL): `200 ok\\x00` could not be stored, the relay died and sent the event
    again at every lease, forever."""
    merchant = unique("shop")
    with receiver() as got:
        got.answer_body, got.answers = b"ok\x00", [200]
        endpoint_id, _ = _endpoint(db, merchant, got.url, "refund.received")
        _refund_steps(f"{merchant}~r", db)
        sender = EventSender(dev=True)
        await _relay_until_quiet(EventRelay(db, sender))
        await sender.aclose()
    assert len(got.received) == 1 and outbound_events.pending_count(db).get(endpoint_id, 0) == 0
    with db.transaction() as session:
        (kept,) = outbound_events.attempts_of(session, endpoint_id)
    assert (kept.status_code, kept.answer) == (200, "ok\\0")


async def test_refunds_an_endpoint_refuses_never_starve_the_others(db: Database) -> None:
    """Before: 17 refunds the ERP answered 422 filled the 50 oldest rows the relay looked at, and a
    good refund behind them got nothing for an hour."""
    merchant = unique("shop")
    clock = Clock(datetime.now(UTC))
    with receiver() as got:
        got.rule = lambda body: 422 if b'"request_id":"bad' in body else 204
        endpoint_id, _ = _endpoint(db, merchant, got.url)
        for n in range(20):
            _refund_steps(f"{merchant}~bad{n}", db, at=clock.at)
        _refund_steps(f"{merchant}~good", db, at=clock.at)
        sender = EventSender(dev=True)
        await _relay_until_quiet(EventRelay(db, sender, clock))
        await sender.aclose()
    good = [r for r in got.received if b'"request_id":"good"' in r.body]
    assert len(good) == 3  # all of its events, in one pass
    assert outbound_events.pending_count(db)[endpoint_id] == 60  # every bad one waits its retry


def test_a_merchants_dashboard_refund_is_announced_to_that_merchant(db: Database) -> None:
    """Before: `external:stripe:shop~re_1` was read as merchant `external:stripe:shop`: the shop's
    endpoint was owed nothing (and a long merchant id broke the reversal's whole transaction)."""
    merchant = unique("shop") + "-" + "x" * 40  # a long id, as merchant ids may be
    endpoint_id, _ = _endpoint(db, merchant, "http://127.0.0.1:9/x", "refund.reversed")
    reversed_ = AuditEvent(
        key="late_failure",
        step="late_failure_reversed",
        actor="psp:stripe",
        reason_code="psp_declined",
        at=T0,
    )
    with db.transaction() as session:
        audit.record(session, f"external:stripe:{merchant}~re_123", "pi_9", [reversed_])
        owed = outbound_events.owed_to(session, endpoint_id)
    body = json.loads(owed[0].payload)
    assert [e.event_type for e in owed] == ["refund.reversed"] and owed[0].merchant == merchant
    assert body["data"]["refund"]["request_id"] is None  # no request of the merchant's named it
    assert body["data"]["refund"]["payment_reference"] == "pi_9"


def test_an_operators_or_reviewers_reason_stays_in_the_audit_trail(db: Database) -> None:
    """Before: `refund.cancelled` carried the operator's words ("internal: fraud team ticket ...")."""
    merchant = unique("shop")
    endpoint_id, _ = _endpoint(db, merchant, "http://127.0.0.1:9/x", "refund.cancelled,refund.failed")
    said = {"message": "internal: fraud team ticket FR-991"}
    cancelled = AuditEvent(
        key="wf:9",
        step="status_changed",
        actor="operator:ann",
        reason_code="cancelled",
        status_before=RefundStatus.NEEDS_ATTENTION,
        status_after=RefundStatus.CANCELLED,
        detail=said,
        at=T0,
    )
    failed = AuditEvent(
        key="wf:8",
        step="status_changed",
        actor="system",
        reason_code="psp_declined",
        status_before=RefundStatus.REFUNDING,
        status_after=RefundStatus.FAILED,
        detail={"message": "card expired"},
        at=T0,
    )
    with db.transaction() as session:
        audit.record(session, f"{merchant}~a", "pi_1", [cancelled])
        audit.record(session, f"{merchant}~b", "pi_2", [failed])
        owed = {e.event_type: json.loads(e.payload) for e in outbound_events.owed_to(session, endpoint_id)}
    assert owed["refund.cancelled"]["data"]["failure"] == {"code": "cancelled", "message": ""}
    assert owed["refund.failed"]["data"]["failure"] == {"code": "psp_declined", "message": "card expired"}


def test_a_second_rotation_in_the_grace_does_not_silently_end_the_first_secret(db: Database) -> None:
    """Before: rotating twice within the grace dropped the original secret at once."""
    merchant = unique("shop")
    endpoint_id, first = _endpoint(db, merchant, "http://127.0.0.1:9/x")
    with db.transaction() as session:
        second = event_endpoints.rotate(session, endpoint_id, timedelta(hours=24), T0)
    with db.transaction() as session, pytest.raises(event_endpoints.StillInGrace):
        event_endpoints.rotate(session, endpoint_id, timedelta(hours=24), T0 + timedelta(hours=1))
    with db.transaction() as session:
        keys = event_endpoints.signing_secrets(session, endpoint_id, T0 + timedelta(hours=2))
        third = event_endpoints.rotate(
            session, endpoint_id, timedelta(hours=24), T0 + timedelta(hours=2), drop_previous=True
        )
    assert keys is not None and (keys.current, keys.previous) == (second, first)  # both still sign
    assert third not in (first, second)
