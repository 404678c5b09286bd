"""Money safety in the database: the over-refund guard under concurrency, a balanced ledger, audit."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.exc import IntegrityError

from adapters.db import audit, ledger, psp_events, reservations
from adapters.db.engine import Database
from adapters.db.models import LedgerTransferRow
from adapters.db.payment_book import DatabasePaymentBook
from adapters.db.psp_events import Take
from adapters.db.reservations import ReservationState
from domain.allocation import AllocatedLine, Allocation
from domain.contracts import AuditEvent, PaymentRecord
from domain.money import Money
from domain.postings import Posting, cost_legs, payout_leg, reversal_postings
from domain.status import ErrorCode, PaymentState, Provider
from tests.helpers import unique

CONCURRENT_REFUNDS = 24


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
        return reservations.reserve(session, request_id, payment, Money(value=amount, currency="EUR")).granted


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


def test_a_payment_named_by_its_charge_and_by_its_intent_is_guarded_once(db: Database) -> None:
    """Stripe: one request names the charge, another the PaymentIntent; one payment, one cap."""
    intent = unique("pi_")
    by_intent = captured(5_000).model_copy(update={"reference": intent})
    by_charge = captured(5_000).model_copy(update={"reference": unique("ch_"), "same_payment_as": intent})
    with db.transaction() as session:
        first = reservations.reserve(session, unique("r"), by_charge, Money(value=3_000, currency="EUR"))
    with db.transaction() as session:
        second = reservations.reserve(session, unique("r"), by_intent, Money(value=3_000, currency="EUR"))
    assert first.granted and not second.granted
    assert (second.refusal, second.available) == (ErrorCode.REFUND_EXCEEDS_CAPTURE, 2_000)


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
        outcome = reservations.reserve(session, request_id, payment, Money(value=100, currency="EUR"))
    assert (outcome.granted, outcome.refusal) == (False, ErrorCode.ALREADY_REFUNDED)


def transfer_row(**fields: object) -> LedgerTransferRow:
    values: dict[str, object] = {
        "transfer_key": unique("t"),
        "request_id": "x",
        "merchant": "m1",
        "currency": "EUR",
        "debit_account": "m1:a:EUR",
        "credit_account": "m1:b:EUR",
        "amount": 10,
        "phase": "single",
        "description": "test",
        **fields,
    }
    return LedgerTransferRow(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad",
    [
        {"amount": 0},
        {"amount": -10},
        {"credit_account": "m1:a:EUR"},  # one-sided: debit and credit the same account
        {"phase": "sideways"},
        {"phase": "post_pending"},  # a resolution that names no pending transfer
    ],
)
def test_the_database_refuses_transfers_that_could_unbalance_the_books(
    db: Database, bad: dict[str, object]
) -> None:
    """A transfer debits and credits one amount, so only these could break the balance: all refused."""
    with pytest.raises(IntegrityError), db.transaction() as session:
        session.add(transfer_row(**bad))
        session.flush()


def test_a_pending_transfer_is_resolved_once(db: Database) -> None:
    with db.transaction() as session:
        pending = transfer_row(phase="pending")
        session.add(pending)
        session.flush()
        session.add(transfer_row(phase="post_pending", pending_id=pending.id))
    with pytest.raises(IntegrityError), db.transaction() as session:
        session.add(transfer_row(phase="void_pending", pending_id=pending.id))
        session.flush()


def allocation_of(goods: int, tax: int, shipping: int) -> Allocation:
    line = AllocatedLine(sku="A", quantity=1, goods=goods, tax=tax)
    return Allocation(currency="EUR", lines=[line], shipping=shipping)


def test_a_reservation_is_pending_until_posted_then_paid_out(db: Database) -> None:
    request_id = unique("r")
    legs = tuple(cost_legs("m1", allocation_of(1_000, 190, 490)))
    held = Posting(request_id, "m1", "EUR", f"{request_id}:hold1", legs)
    for _ in range(2):  # holding again under the same key is a no-op
        with db.transaction() as session:
            ledger.hold(session, held, description="hold")
    with db.transaction() as session:
        assert ledger.balances(session, request_id) == {}
        assert ledger.balances(session, request_id, pending=True) == {
            ("m1:refund_contra_revenue:EUR", "EUR"): 1_000,
            ("m1:sales_tax_payable:EUR", "EUR"): 190,
            ("m1:shipping_contra_revenue:EUR", "EUR"): 490,
            ("m1:customer_refunds_payable:EUR", "EUR"): -1_680,
        }
        assert ledger.resolve(session, request_id, post=True, description="confirmed") == 3
        assert ledger.resolve(session, request_id, post=True, description="again") == 0
        paid = (payout_leg("m1", "adyen", "EUR", 1_680),)
        payout = Posting(request_id, "m1", "EUR", f"{request_id}:payout", paid)
        for expected in (True, False):
            assert ledger.post(session, payout, description="paid") is expected
    with db.transaction() as session:
        assert ledger.balances(session, request_id, pending=True) == {}
        assert ledger.balances(session, request_id) == {
            ("m1:refund_contra_revenue:EUR", "EUR"): 1_000,
            ("m1:sales_tax_payable:EUR", "EUR"): 190,
            ("m1:shipping_contra_revenue:EUR", "EUR"): 490,
            ("m1:psp_receivable:adyen:EUR", "EUR"): -1_680,
        }


def test_a_refused_refund_voids_its_reservation_and_posts_nothing(db: Database) -> None:
    request_id = unique("r")
    with db.transaction() as session:
        legs = tuple(cost_legs("m1", allocation_of(700, 0, 0)))
        held = Posting(request_id, "m1", "EUR", f"{request_id}:hold1", legs)
        ledger.hold(session, held, description="hold")
        assert ledger.resolve(session, request_id, post=False, description="refused") == 1
        assert ledger.resolve(session, request_id, post=True, description="too late") == 0
    with db.transaction() as session:
        assert ledger.balances(session, request_id) == {}
        assert ledger.balances(session, request_id, pending=True) == {}


def test_audit_rows_are_written_once_per_key(db: Database) -> None:
    request_id = unique("r")
    event = AuditEvent(key="k1", step="validated", actor="system", at=datetime.now(UTC))
    for _ in range(2):
        with db.transaction() as session:
            audit.record(session, request_id, "pi_1", [event])
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


def test_payment_book_shows_a_merchant_account_only_its_own_payments(db: Database) -> None:
    book = DatabasePaymentBook(db)
    ours, before_accounts = unique("psp"), unique("psp")
    payment = PaymentRecord(
        provider=Provider.ADYEN,
        reference=ours,
        state=PaymentState.CAPTURED,
        currency="EUR",
        amount_captured=900,
    )
    book.record(payment, "AcmeECOM")
    book.record(payment.model_copy(update={"reference": before_accounts}))  # kept before accounts were
    assert book.get(Provider.ADYEN, ours, "AcmeECOM") == payment
    assert book.get(Provider.ADYEN, ours, "GlobexECOM") is None  # another merchant account's
    assert book.get(Provider.ADYEN, before_accounts, "GlobexECOM") is not None


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    refunds=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=10**9),  # goods
            st.integers(min_value=0, max_value=10**8),  # tax
            st.integers(min_value=0, max_value=10**6),  # shipping
            st.sampled_from(["JPY", "EUR", "KWD"]),
            st.sampled_from(["posted", "voided", "reversed", "pending"]),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_the_books_balance_per_currency_whatever_happens(
    tmp_path_factory: pytest.TempPathFactory, refunds: list[tuple[int, int, int, str, str]]
) -> None:
    db = Database.connect(f"sqlite:///{tmp_path_factory.mktemp('books') / 'books.db'}")
    try:
        for goods, tax, shipping, currency, fate in refunds:
            request_id = unique("r")
            allocation = allocation_of(goods, tax, shipping).model_copy(update={"currency": currency})
            if allocation.total == 0:
                continue
            run_refund(db, request_id, allocation, fate)
        with db.transaction() as session:
            for view in (ledger.balances(session), ledger.balances(session, pending=True)):
                per_currency: dict[str, int] = {}
                for (_, currency), value in view.items():
                    per_currency[currency] = per_currency.get(currency, 0) + value
                assert set(per_currency.values()) <= {0}
    finally:
        db.dispose()


def run_refund(db: Database, request_id: str, allocation: Allocation, fate: str) -> None:
    currency = allocation.currency
    with db.transaction() as session:
        held = Posting(request_id, "m1", currency, f"{request_id}:hold1", tuple(cost_legs("m1", allocation)))
        ledger.hold(session, held, description=fate)
        if fate == "pending":
            return
        ledger.resolve(session, request_id, post=fate != "voided", description=fate)
        if fate == "voided":
            return
        paid = (payout_leg("m1", "stripe", currency, allocation.total),)
        payout = Posting(request_id, "m1", currency, f"{request_id}:payout", paid)
        ledger.post(session, payout, description=fate)
        if fate == "reversed":
            posted = ledger.transfers(session, request_id, posted_only=True)
            for reversal in reversal_postings(request_id, posted):
                ledger.post(session, reversal, description=fate)
    if fate == "reversed":
        with db.transaction() as session:
            assert ledger.balances(session, request_id) == {}


def test_one_delivery_at_a_time_takes_a_psp_event_and_a_killed_ones_claim_goes_stale(db: Database) -> None:
    """Of deliveries of one event at once, one takes it; the rest are busy until it is remembered,
    then replays. A claim its process never finished (killed) is taken again once stale."""
    event, now = unique("evt"), datetime.now(UTC)
    with db.transaction() as session:
        assert psp_events.take(session, Provider.STRIPE, "default", event, now) is Take.TAKEN
    with db.transaction() as session:
        assert psp_events.take(session, Provider.STRIPE, "default", event, now) is Take.BUSY
    later = now + psp_events.CLAIM_STALE_AFTER + timedelta(seconds=1)
    with db.transaction() as session:  # the first was killed before it signalled: taken again
        assert psp_events.take(session, Provider.STRIPE, "default", event, later) is Take.TAKEN
    with db.transaction() as session:
        psp_events.remember(session, Provider.STRIPE, "default", event)
    with db.transaction() as session:
        assert psp_events.take(session, Provider.STRIPE, "default", event, later) is Take.DONE
        assert psp_events.take(session, Provider.STRIPE, "globex", event, later) is Take.TAKEN  # its own
    released = unique("evt")
    with db.transaction() as session:
        assert psp_events.take(session, Provider.ADYEN, "default", released, now) is Take.TAKEN
        psp_events.release(session, Provider.ADYEN, "default", released)  # could not signal it
    with db.transaction() as session:
        assert psp_events.take(session, Provider.ADYEN, "default", released, now) is Take.TAKEN


def test_many_deliveries_of_one_event_at_once_take_it_once(db: Database) -> None:
    event = unique("evt")

    def attempt(_: int) -> Take:
        with db.transaction() as session:
            taken = psp_events.take(session, Provider.ADYEN, "default", event)
        if taken is Take.TAKEN:
            with db.transaction() as session:
                psp_events.remember(session, Provider.ADYEN, "default", event)
        return taken

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(attempt, range(24)))
    assert results.count(Take.TAKEN) == 1, results
