"""What one merchant's PSP account claims before, or around, another's own word: a payment it names
before the payment's own account reports it, a dashboard refund it books with a key that reads
nothing back, and ids holding the separator merchants' ids are built with. Each test's docstring
says what the attack did before; the test asserts what happens now."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from sqlmodel import col, select

from adapters.db import holds, ledger
from adapters.db.models import PspPaymentRow, ReservationRow
from adapters.db.payment_book import DatabasePaymentBook
from domain.naming import external_request_id, late_failure_workflow_id, names_own
from domain.status import Provider
from sandbox.adyen.control import AdyenSandboxControl
from sandbox.paypal.control import PayPalSandboxControl
from sandbox.server import SandboxServer
from sandbox.stripe.control import SandboxControl
from sandbox.stripe.objects import webhook_headers
from tests.conftest import Stack, free_port, starter_for, worker_for
from tests.deliveries import adyen_delivery, adyen_item, globex_item, post, refund_event
from tests.fixtures.merchants import fixture_globex_psps  # noqa: F401  (a fixture, used by name)
from tests.flows import (
    assert_not_started,
    cli,
    known_adyen_payment,
    refund_through_pipeline,
    steps_of,
)
from tests.helpers import (
    GLOBEX_PAYPAL_SECRET,
    GLOBEX_PAYPAL_WEBHOOK,
    GLOBEX_SECRET,
    GLOBEX_STRIPE_KEY,
    GLOBEX_STRIPE_WEBHOOK_SECRET,
    eventually,
    merchants_file,
    refund_body,
    signed_for,
    unique,
)
from workers.psp_wiring.adyen import SANDBOX_ADYEN_HMAC_KEY


def _in_use(stack: Stack, provider: str, reference: str) -> list[tuple[str, int, str]]:
    """The over-refund guard's reservations on a payment: whose, how much, in what state."""
    key = f"{provider}:{reference}"
    query = select(ReservationRow).where(col(ReservationRow.payment_key) == key)
    with stack.database.transaction() as session:
        return [(r.request_id, r.amount, r.state) for r in session.execute(query).scalars()]


# --- Adyen: the payment book and the over-refund guard are first come, first served ----------------


async def test_a_payment_two_adyen_accounts_report_stays_the_first_ones_and_the_second_is_listed(
    stack: Stack, adyen: AdyenSandboxControl, globex_psps: SandboxServer, tmp_path: Path
) -> None:
    """Adyen's payments cannot be read back: the first account to report a pspReference keeps it.
    Globex reports (its own key, its own merchant account) a pspReference the default merchant's
    account reports a moment later: the default merchant's refund of it is refused as not found (no
    money moves, nothing of globex's is refunded), and the default account's notifications of it are
    listed for ops (`foreign_psp_event`), who look it up in Adyen. To win this race an account must
    know another's pspReference before Adyen notifies us of it."""
    reference = unique("PSP").upper()
    squat = globex_item(
        reference,
        "",
        eventCode="AUTHORISATION",
        amount={"value": 1, "currency": "EUR"},
    )
    merchants = merchants_file(tmp_path, globex_psps.url)
    async with starter_for(stack, merchants_file=merchants) as (_settings, http):
        response = await http.post("/webhooks/adyen/globex", content=adyen_delivery(squat))
        assert response.status_code == 200
    adyen.seed_payment(amount=5_000, currency="EUR", psp_reference=reference)  # genuine notifications

    async def listed() -> str:
        return (await cli(stack, "attention")).stdout

    await eventually(listed, lambda text: reference in text and "foreign_psp_event" in text, timeout=30)
    view = await refund_through_pipeline(stack, reference, amount=2_000, provider="adyen")
    assert (view["status"], view["failure_code"]) == ("failed", "payment_not_found")
    assert adyen.modifications(reference) == []


async def _known(stack: Stack, reference: str) -> bool:
    return DatabasePaymentBook(stack.database).get(Provider.ADYEN, reference) is not None


async def _notified(adyen: AdyenSandboxControl, reference: str) -> int:
    return len(adyen.notifications(reference))


async def test_a_dashboard_refund_of_a_payment_nobody_reported_waits_for_the_payments_own_account(
    stack: Stack, adyen: AdyenSandboxControl, globex_psps: SandboxServer, tmp_path: Path
) -> None:
    """Globex HMACs a successful REFUND with no merchantReference (a Customer Area refund) naming a
    payment no account reported yet: answered 503 (Adyen delivers it again); once the default
    account's AUTHORISATION/CAPTURE are in, it is refused as another's. Before, it was booked to
    globex first and its committed reservation took the payment's refundable amount."""
    reference = unique("PSP").upper()
    psp_refund_id = unique("GLXREF").upper()
    forged = globex_item(
        psp_refund_id,
        "",
        originalReference=reference,
        amount={"value": 5_000, "currency": "EUR"},
    )
    merchants = merchants_file(tmp_path, globex_psps.url)
    async with starter_for(stack, merchants_file=merchants) as (settings, http), worker_for(stack, settings):
        response = await http.post("/webhooks/adyen/globex", content=adyen_delivery(forged))
        assert response.status_code == 503  # not known yet: Adyen delivers it again later
        adyen.seed_payment(amount=5_000, currency="EUR", psp_reference=reference)
        await eventually(lambda: _known(stack, reference), bool)
        again = await http.post("/webhooks/adyen/globex", content=adyen_delivery(forged))
        assert again.status_code == 200  # now known as the default account's: refused
        await assert_not_started(stack, f"external-adyen-globex~{psp_refund_id}")
    assert _in_use(stack, "adyen", reference) == []
    view = await refund_through_pipeline(stack, reference, amount=2_000, provider="adyen")
    assert view["status"] == "succeeded", (view.get("failure_code"), _in_use(stack, "adyen", reference))


async def _steps(stack: Stack, request_id: str) -> list[str]:
    return steps_of(stack, request_id)


def _revoked(path: Path, old: str, new: str) -> Path:
    """Globex's merchants entry with an API key its own PSP account no longer accepts (globex rolled
    it, or gave a restricted key that cannot read refunds): its webhook secret still verifies."""
    path.write_text(path.read_text().replace(f'"{old}"', f'"{new}"'))
    return path


async def test_a_stripe_key_that_reads_nothing_books_no_dashboard_refund_of_anothers_payment(
    stack: Stack, sandbox: SandboxControl, globex_psps: SandboxServer, tmp_path: Path
) -> None:
    """Stripe events are meant to be read back with the reporting account's key. Globex makes that
    read fail with an auth error (a rolled or restricted key) and signs, with its webhook secret, a
    succeeded dashboard refund naming the default merchant's PaymentIntent for its full amount.
    Its read-back is asked again until the key works, so nothing is booked (before, the unreadable
    word stood and its reservation refused the victim's own refund)."""
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    refund_id = unique("re")
    event = refund_event(None, refund_id, "succeeded", 5_000, payment)
    merchants = merchants_file(tmp_path, globex_psps.url)
    merchants = _revoked(merchants, GLOBEX_STRIPE_KEY, "sk_test_rolled_by_globex")
    async with starter_for(stack, merchants_file=merchants) as (settings, http), worker_for(stack, settings):
        headers = webhook_headers(GLOBEX_STRIPE_WEBHOOK_SECRET, event)
        response = await http.post("/webhooks/stripe/globex", content=event, headers=headers)
        assert response.status_code == 200, response.text
        booking = external_request_id("stripe", refund_id, "globex")
        await eventually(lambda: _steps(stack, booking), lambda steps: "psp_read_back_failed" in steps)
    view = await refund_through_pipeline(stack, payment, amount=2_000)
    assert view["status"] == "succeeded", (view.get("failure_code"), _in_use(stack, "stripe", payment))


async def test_a_paypal_key_that_reads_nothing_books_no_dashboard_refund_of_anothers_capture(
    stack: Stack, paypal: PayPalSandboxControl, globex_psps: SandboxServer, tmp_path: Path
) -> None:
    """The same with PayPal: globex's client secret no longer works; a PAYMENT.CAPTURE.REFUNDED
    without custom_id whose `up` link names the default merchant's capture, signed for globex's
    webhook id, books nothing (before, it was booked and ate the capture's refundable amount)."""
    capture = paypal.seed_capture(amount="50.00", currency="EUR")
    refund_id = unique("PPREF").upper()
    payload = {
        "id": unique("WH"),
        "event_type": "PAYMENT.CAPTURE.REFUNDED",
        "resource": {
            "id": refund_id,
            "status": "COMPLETED",
            "amount": {"value": "50.00", "currency_code": "EUR"},
            "links": [{"rel": "up", "href": f"https://api.paypal.com/v2/payments/captures/{capture}"}],
        },
    }
    body = json.dumps(payload)
    merchants = merchants_file(tmp_path, globex_psps.url, paypal=True)
    merchants = _revoked(merchants, GLOBEX_PAYPAL_SECRET, "rolled-by-globex")
    async with starter_for(stack, merchants_file=merchants) as (settings, http), worker_for(stack, settings):
        headers = paypal.sign(body, webhook_id=GLOBEX_PAYPAL_WEBHOOK)
        response = await http.post("/webhooks/paypal/globex", content=body, headers=headers)
        assert response.status_code == 200, response.text
        booking = external_request_id("paypal", refund_id, "globex")
        await eventually(lambda: _steps(stack, booking), lambda steps: "psp_read_back_failed" in steps)
    view = await refund_through_pipeline(stack, capture, amount=2_000, provider="paypal")
    assert view["status"] == "succeeded", (view.get("failure_code"), _in_use(stack, "paypal", capture))


# --- the default merchant's account against globex's refunds -----------------------------------------


async def test_a_request_id_of_another_merchants_cannot_cut_short_its_genuine_late_failure(
    stack: Stack, globex_psps: SandboxServer, tmp_path: Path
) -> None:
    """Late-failure runs are keyed `late-failure-<refund_id(merchant, request id)>-<psp refund>` and
    started with TERMINATE_EXISTING. Before, a request id read from a PSP event was never checked: the default
    merchant's account signs a `refund.updated` failed whose metadata names `globex~globex~<req>`,
    which gives exactly the id of globex's genuine run (`globex~` + `globex~<req>`). Started after the
    genuine failure was taken (its run waiting for a worker), it terminates it: the genuine word is
    remembered as taken, and globex's books said paid while its customer was not. Now the forged
    id is refused at the route."""
    merchant = unique("globex")  # its refunds apart from other tests' globex's in the session's books
    port = free_port()
    globex = SandboxControl(globex_psps.url)
    globex_psps.set_stripe_webhook_url(f"http://127.0.0.1:{port}/webhooks/stripe/{merchant}")
    payment = globex.seed_stripe_payment(amount=5_000, currency="EUR")
    request_id = unique("gx")
    body = refund_body(request_id, payment, amount=1_200)
    merchants = merchants_file(tmp_path, globex_psps.url, globex=merchant)
    ours = f"{merchant}~{request_id}"
    async with starter_for(stack, port=port, merchants_file=merchants) as (settings, http):
        async with worker_for(stack, settings):
            response = await http.post(
                "/v1/refund-requests", content=body, headers=signed_for(merchant, GLOBEX_SECRET, body)
            )
            assert response.status_code == 202, response.text
            handle = stack.client.get_workflow_handle(f"refund-{ours}")
            await handle.result()
        [made] = globex.stripe_refunds(payment)
        psp_refund_id = made["id"]
        with stack.database.transaction() as session:
            before = ledger.balances(session, ours)
        assert before != {}
        globex_psps.set_stripe_webhook_url(None)  # its genuine word is delivered below, by hand
        globex.fail_stripe_refund_late(psp_refund_id)
        genuine = refund_event(made["metadata"]["refund_request_id"], psp_refund_id, "failed")
        forged = refund_event(f"{merchant}~{made['metadata']['refund_request_id']}", psp_refund_id, "failed")
        own = webhook_headers(GLOBEX_STRIPE_WEBHOOK_SECRET, genuine)
        assert (
            await http.post(f"/webhooks/stripe/{merchant}", content=genuine, headers=own)
        ).status_code == 200
        default = webhook_headers(stack.settings.stripe_webhook_secret, forged)
        assert (await http.post("/webhooks/stripe", content=forged, headers=default)).status_code == 200
        async with worker_for(stack, settings):
            late = stack.client.get_workflow_handle(
                late_failure_workflow_id(made["metadata"]["refund_request_id"], psp_refund_id, merchant)
            )
            await late.result()
    with stack.database.transaction() as session:
        assert ledger.balances(session, ours) == {}


async def test_a_psp_refund_id_holding_the_separator_cannot_take_anothers_booking(
    stack: Stack, adyen: AdyenSandboxControl, globex_psps: SandboxServer, tmp_path: Path
) -> None:
    """A dashboard refund's workflow and booking are `...-<refund_id(merchant, psp refund id)>`;
    before, the PSP refund id was never checked for `~`. The default merchant's account HMACs a REFUND (no
    merchantReference, on a payment of its own) whose pspReference is `globex~<DASH>`: it is booked
    refused now; before, it was booked under globex's own booking id to the default merchant, and
    globex's genuine REFUND of <DASH> booked nothing (the id was taken)."""
    merchant = unique("globex")  # its refunds apart from other tests' globex's in the session's books
    own_payment = await known_adyen_payment(stack, adyen, 8_000)
    dash = unique("DASH").upper()
    booking = external_request_id("adyen", dash, merchant)
    squat = adyen_item(
        f"{merchant}~{dash}",
        "",
        SANDBOX_ADYEN_HMAC_KEY,
        originalReference=own_payment,
        amount={"value": 700, "currency": "EUR"},
    )
    assert (await post(stack, "adyen", adyen_delivery(squat))).status_code == 200
    await assert_not_started(stack, f"external-adyen-{merchant}~{dash}")  # refused: `~` in a PSP id
    globex_payment = unique("GLXPAY").upper()
    paid = globex_item(
        globex_payment,
        "",
        eventCode="AUTHORISATION",
        amount={"value": 700, "currency": "EUR"},
    )
    genuine = globex_item(
        dash,
        "",
        originalReference=globex_payment,
        amount={"value": 700, "currency": "EUR"},
    )
    merchants = merchants_file(tmp_path, globex_psps.url, globex=merchant)
    async with starter_for(stack, merchants_file=merchants) as (settings, http), worker_for(stack, settings):
        for item in (paid, genuine):
            assert (
                await http.post(f"/webhooks/adyen/{merchant}", content=adyen_delivery(item))
            ).status_code == 200

        async def globex_booked() -> dict:  # type: ignore[type-arg]
            with stack.database.transaction() as session:
                return ledger.balances(session, booking)

        balances = await eventually(globex_booked, bool, timeout=15)
    assert balances and all(account.startswith(f"{merchant}:") for account, _currency in balances), balances


@pytest.mark.parametrize(
    ("owner", "request_id", "psp_ids", "own"),
    [
        (None, "r-1", ("re_1",), True),
        (None, "globex~r-1", ("re_1",), False),  # another merchant's refund, on the default route
        ("globex", "globex~r-1", ("re_1",), True),
        ("globex", "r-1", ("re_1",), False),  # the default merchant's, on globex's route
        ("globex", "globex~globex~r-1", (), False),  # would name globex's own workflows' ids
        ("globex", "acme~r-1", (), False),
        ("globex", None, ("globex~DASH",), False),  # a PSP id holding the separator
        (None, None, ("PAY", None), True),
    ],
)
def test_ids_a_psp_event_carries_name_only_its_own_merchants_refunds(
    owner: str | None, request_id: str | None, psp_ids: tuple[str | None, ...], own: bool
) -> None:
    assert names_own(owner, request_id, *psp_ids) is own


# --- payments recorded before the payment book kept accounts -----------------------------------------


def _as_recorded_before_0007(stack: Stack, reference: str) -> None:
    """The default merchant's payment as a deployment upgraded past migration 0007 keeps it: the
    column was added nullable with no backfill, so every payment notified before it has NULL
    account ("recorded before accounts were kept (one account then)": the default merchant's)."""
    with stack.database.transaction() as session:
        row = session.get(PspPaymentRow, (Provider.ADYEN.value, reference))
        assert row is not None and row.account is not None
        row.account = None
        session.add(row)


async def test_globex_dashboard_refund_of_a_pre_0007_default_payment_is_refused(
    stack: Stack, adyen: AdyenSandboxControl, globex_psps: SandboxServer, tmp_path: Path
) -> None:
    """A payment recorded before the book kept accounts is the default merchant's (adopted at start).
    Before, it was nobody's: globex's successful REFUND (no merchantReference) naming it was booked
    to globex, its committed reservation eating the payment's refundable amount."""
    reference = await known_adyen_payment(stack, adyen, 5_000)
    _as_recorded_before_0007(stack, reference)
    dash = unique("GLXDASH").upper()
    forged = globex_item(
        dash,
        "",
        originalReference=reference,
        amount={"value": 5_000, "currency": "EUR"},
    )
    merchants = merchants_file(tmp_path, globex_psps.url)
    booking = external_request_id("adyen", dash, "globex")
    async with starter_for(stack, merchants_file=merchants) as (settings, http), worker_for(stack, settings):
        response = await http.post("/webhooks/adyen/globex", content=adyen_delivery(forged))
        assert response.status_code == 200, response.text

        async def settled() -> object:
            with stack.database.transaction() as session:
                booked = ledger.balances(session, booking)
            return booked or "psp_update_unproven" in steps_of(stack, booking)

        await eventually(settled, bool, timeout=20)
    view = await refund_through_pipeline(stack, reference, amount=2_000, provider="adyen")
    assert view["status"] == "succeeded", (view.get("failure_code"), _in_use(stack, "adyen", reference))
    with stack.database.transaction() as session:
        assert ledger.balances(session, booking) == {}, "globex booked a refund of the default's payment"


async def test_globex_chargeback_cannot_hold_a_pre_0007_default_payment(
    stack: Stack, adyen: AdyenSandboxControl, globex_psps: SandboxServer, tmp_path: Path
) -> None:
    """The same payment: before, the book showed an unowned row to any account, so globex's
    CHARGEBACK held the default merchant's payment until ops lifted it."""
    reference = await known_adyen_payment(stack, adyen, 5_000)
    _as_recorded_before_0007(stack, reference)
    item = globex_item(
        unique("CB").upper(),
        "",
        eventCode="CHARGEBACK",
        originalReference=reference,
    )
    async with starter_for(stack, merchants_file=merchants_file(tmp_path, globex_psps.url)) as (_s, http):
        response = await http.post("/webhooks/adyen/globex", content=adyen_delivery(item))
        assert response.status_code == 200
    with stack.database.transaction() as session:
        assert holds.held(session, Provider.ADYEN, reference) is None


# --- a dashboard refund read back with a key that reads nothing ------------------------------------


async def test_a_genuine_dashboard_refund_taken_while_the_key_was_revoked_is_booked_once_it_works(
    stack: Stack, globex_psps: SandboxServer, tmp_path: Path
) -> None:
    """Globex's own Stripe dashboard refund of its own payment arrives while its API key reads
    nothing (rolled): the read-back is asked again, with backoff, until the key works, then the
    refund is booked (before, the run took it as unproven, and the event, remembered, never came
    again: a refund that left the PSP was never booked)."""
    merchant = unique("globex")  # its refunds apart from other tests' globex's in the session's books
    globex = SandboxControl(globex_psps.url)
    globex_psps.set_stripe_webhook_url(None)
    payment = globex.seed_stripe_payment(amount=5_000, currency="EUR")
    made = httpx.post(
        f"{globex_psps.url}/v1/refunds",
        data={"payment_intent": payment, "amount": "2000"},
        headers={"Authorization": f"Bearer {GLOBEX_STRIPE_KEY}"},
    ).json()
    refund_id = made["id"]
    if made.get("status") != "succeeded":
        globex.settle_stripe_refund(refund_id)
    event = refund_event(None, refund_id, "succeeded", 2_000, payment)
    headers = webhook_headers(GLOBEX_STRIPE_WEBHOOK_SECRET, event)
    booking = external_request_id("stripe", refund_id, merchant)
    good = merchants_file(tmp_path, globex_psps.url, globex=merchant)
    text = good.read_text()
    revoked = tmp_path / "revoked.toml"
    revoked.write_text(text.replace(f'"{GLOBEX_STRIPE_KEY}"', '"sk_test_rolled"'))
    async with starter_for(stack, merchants_file=revoked) as (settings, http), worker_for(stack, settings):
        response = await http.post(f"/webhooks/stripe/{merchant}", content=event, headers=headers)
        assert response.status_code == 200, response.text
        await eventually(lambda: _steps(stack, booking), lambda steps: "psp_read_back_failed" in steps)
        queue = settings.task_queue
    restored = starter_for(stack, task_queue=queue, merchants_file=good)
    async with restored as (settings, http), worker_for(stack, settings):

        async def booked() -> dict:  # type: ignore[type-arg]
            with stack.database.transaction() as session:
                return ledger.balances(session, booking)

        try:
            await eventually(booked, bool, timeout=45)  # the read-back's backoff: 1, 2, 4, 8, 16 s
        except AssertionError:
            run = stack.client.get_workflow_handle(f"refund-external-stripe-{merchant}~{refund_id}")
            status = (await run.describe()).status
            raise AssertionError(f"not booked; run {status}; trail {steps_of(stack, booking)}") from None
