"""Money safety in the database: the over-refund guard under concurrency, a balanced ledger, audit."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest

from adapters.db import audit, ledger, reservations
from adapters.db.engine import Database
from adapters.db.payment_book import DatabasePaymentBook
from adapters.db.reservations import ReservationState
from domain.contracts import AuditEvent, PaymentRecord
from domain.money import Money
from domain.status import ErrorCode, PaymentState, Provider
from tests.helpers import unique

CONCURRENT_REFUNDS = 24


@pytest.fixture(params=["sqlite", "postgresql"])
def db(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    postgres_url: str | None,
) -> Iterator[Database]:
    if request.param == "postgresql":
        if postgres_url is None:
            pytest.skip("PostgreSQL is not running here")
        url = postgres_url
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('guard') / 'guard.db'}"
    database = Database.connect(url)
    yield database
    database.dispose()


def captured(amount: int) -> PaymentRecord:
    return PaymentRecord(
        provider=Provider.STRIPE,
        reference=unique("pi"),
        state=PaymentState.CAPTURED,
        currency="EUR",
        amount_captured=amount,
    )


def reserve(db: Database, request_id: str, payment: PaymentRecord, amount: int) -> bool:
    with db.transaction() as session:
        return reservations.reserve(
            db, session, request_id, payment, Money(value=amount, currency="EUR")
        ).granted


def test_concurrent_partial_refunds_never_exceed_the_capture(db: Database) -> None:
    payment = captured(10_000)
    amounts = [700 + 37 * i for i in range(CONCURRENT_REFUNDS)]  # 24 refunds asking for 27,012 in all
    ids = [unique("r") for _ in amounts]
    with ThreadPoolExecutor(max_workers=CONCURRENT_REFUNDS) as pool:
        granted = list(
            pool.map(
                lambda args: reserve(db, *args),
                [(i, payment, a) for i, a in zip(ids, amounts, strict=True)],
            )
        )
    total = sum(a for a, ok in zip(amounts, granted, strict=True) if ok)
    assert 0 < total <= 10_000
    assert any(not ok for ok in granted)
    # what is left is too little for every refused request
    left = 10_000 - total
    assert all(a > left for a, ok in zip(amounts, granted, strict=True) if not ok)


def test_reservation_is_idempotent_and_released_money_is_reusable(db: Database) -> None:
    payment = captured(1_000)
    assert reserve(db, "a-" + payment.reference, payment, 800)
    assert reserve(db, "a-" + payment.reference, payment, 800)  # the same request again
    assert not reserve(db, "b-" + payment.reference, payment, 300)
    with db.transaction() as session:
        assert reservations.settle(session, "a-" + payment.reference, ReservationState.RELEASED)
        assert not reservations.settle(session, "a-" + payment.reference, ReservationState.COMMITTED)
    assert reserve(db, "b-" + payment.reference, payment, 300)


def test_a_committed_request_is_never_reserved_again(db: Database) -> None:
    """Even if Temporal forgot the workflow, the same request id cannot move money twice."""
    payment = captured(1_000)
    request_id = "c-" + payment.reference
    assert reserve(db, request_id, payment, 100)
    with db.transaction() as session:
        assert reservations.settle(session, request_id, ReservationState.COMMITTED)
    with db.transaction() as session:
        outcome = reservations.reserve(db, session, request_id, payment, Money(value=100, currency="EUR"))
    assert (outcome.granted, outcome.refusal) == (False, ErrorCode.ALREADY_REFUNDED)


def test_unbalanced_postings_are_impossible(db: Database) -> None:
    with db.transaction() as session, pytest.raises(ledger.UnbalancedPosting):
        ledger.post(
            db,
            session,
            posting_key=unique("p"),
            request_id="x",
            currency="EUR",
            description="bad",
            lines=[ledger.Line("a", debit=10), ledger.Line("b", credit=9)],
        )
    with db.transaction() as session, pytest.raises(ledger.UnbalancedPosting):
        ledger.post(
            db,
            session,
            posting_key=unique("p"),
            request_id="x",
            currency="EUR",
            description="bad",
            lines=[ledger.Line("a", debit=10, credit=10)],
        )


def test_reposting_is_a_no_op_and_books_balance(db: Database) -> None:
    request_id = unique("r")
    lines = ledger.refund_lines("stripe", "m1", "EUR", 1_234)
    for expected in (True, False):
        with db.transaction() as session:
            assert (
                ledger.post(
                    db,
                    session,
                    posting_key=f"{request_id}:refund",
                    request_id=request_id,
                    currency="EUR",
                    description="refund",
                    lines=lines,
                )
                is expected
            )
    with db.transaction() as session:
        balances = ledger.balances(session, request_id)
        assert balances == {
            ("m1:refunds_contra_revenue:EUR", "EUR"): 1_234,
            ("m1:psp_clearing:stripe:EUR", "EUR"): -1_234,
        }
        assert sum(ledger.balances(session).values()) == 0


def test_audit_rows_are_written_once_per_key(db: Database) -> None:
    request_id = unique("r")
    event = AuditEvent(key="k1", step="validated", actor="system", at=datetime.now(UTC))
    for _ in range(2):
        with db.transaction() as session:
            audit.record(db, session, request_id, "pi_1", [event])
    with db.transaction() as session:
        assert [e.step for e in audit.trail(session, request_id)] == ["validated"]


def test_payment_book_keeps_the_furthest_state(db: Database) -> None:
    book = DatabasePaymentBook(db)
    reference = unique("psp")
    authorised = PaymentRecord(
        provider=Provider.ADYEN,
        reference=reference,
        state=PaymentState.AUTHORIZED,
        currency="EUR",
        amount_authorized=5_000,
    )
    captured = authorised.model_copy(update={"state": PaymentState.CAPTURED, "amount_captured": 5_000})
    assert book.get(Provider.ADYEN, reference) is None
    book.record(captured)
    book.record(authorised)  # late, out of order: ignored
    book.record(captured)  # duplicate: nothing changes
    assert book.get(Provider.ADYEN, reference) == captured
