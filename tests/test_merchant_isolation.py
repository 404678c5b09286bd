"""One merchant's PSP account moves only its own money: what its verified events name of another
merchant's payments and refunds changes nothing there."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlmodel import col, select
from temporalio.testing import ActivityEnvironment

from activities.ledger import LedgerActivities
from adapters.db import holds, ledger, refunds
from adapters.db.engine import Database
from adapters.db.models import RefundRow
from adapters.db.payment_book import DatabasePaymentBook
from domain.contracts import FinishInput, LateFailureInput, PaymentRecord, PspRefundUpdate
from domain.money import Money
from domain.naming import external_request_id
from domain.status import PaymentState, Provider, PspRefundStatus, RefundStatus
from sandbox.adyen.control import AdyenSandboxControl
from sandbox.paypal.control import PayPalSandboxControl
from sandbox.server import SandboxServer
from sandbox.stripe.control import SandboxControl
from sandbox.stripe.objects import webhook_headers
from tests.conftest import Stack, starter_for, worker_for
from tests.deliveries import adyen_delivery, adyen_item, globex_item, post, refund_event
from tests.fixtures.merchants import fixture_globex_psps  # noqa: F401  (a fixture, used by name)
from tests.flows import (
    assert_not_started,
    cli,
    known_adyen_payment,
    refund_through_pipeline,
    steps_of,
    submit,
    wait_for_status,
)
from tests.helpers import (
    GLOBEX_PAYPAL_WEBHOOK,
    GLOBEX_STRIPE_WEBHOOK_SECRET,
    eventually,
    merchants_file,
    refund_body,
    unique,
    workflow_completed,
)
from workers.psp_wiring.adyen import SANDBOX_ADYEN_HMAC_KEY
from workflows.refund import RefundWorkflow


def test_an_adyen_notification_from_another_account_leaves_the_payment_as_its_own_account_told(
    stack: Stack,
) -> None:
    """Globex signs (with its own HMAC key) a CAPTURE naming the default merchant's payment, with a
    larger amount: the payment book keeps what the payment's own account said."""
    book = DatabasePaymentBook(stack.database)
    reference = unique("PSP").upper()
    ours = PaymentRecord(
        provider=Provider.ADYEN,
        reference=reference,
        state=PaymentState.CAPTURED,
        currency="EUR",
        amount_authorized=5_000,
        amount_captured=5_000,
    )
    book.record(ours, "DefaultAccount")
    book.record(ours.model_copy(update={"amount_captured": 90_000, "amount_authorized": 90_000}), "Globex")
    kept = book.get(Provider.ADYEN, reference, "DefaultAccount")
    assert kept is not None and kept.amount_captured == 5_000
    assert book.get(Provider.ADYEN, reference, "Globex") is None


async def test_another_merchants_account_cannot_hold_a_payment_it_does_not_own(
    stack: Stack, sandbox: SandboxControl, globex_psps: SandboxServer, tmp_path: Path
) -> None:
    """Globex signs, with its own Stripe account's secret, a dispute naming the default merchant's
    PaymentIntent: its account does not know the payment, so nothing is held (before, the default
    merchant's refund of it waited for ops), the refusal is counted and listed for ops."""
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    dispute = json.dumps(
        {
            "id": unique("evt_dispute"),
            "object": "event",
            "type": "charge.dispute.created",
            "data": {
                "object": {
                    "id": unique("dp"),
                    "object": "dispute",
                    "payment_intent": payment,
                    "charge": None,
                    "reason": "fraudulent",
                    "amount": 5_000,
                    "currency": "eur",
                    "status": "needs_response",
                }
            },
        }
    )
    starter = starter_for(stack, merchants_file=merchants_file(tmp_path, globex_psps.url))
    async with starter as (_settings, http):
        headers = webhook_headers(GLOBEX_STRIPE_WEBHOOK_SECRET, dispute)
        assert (
            await http.post("/webhooks/stripe/globex", content=dispute, headers=headers)
        ).status_code == 200
    with stack.database.transaction() as session:
        assert holds.held(session, Provider.STRIPE, payment) is None
    view = await refund_through_pipeline(stack, payment, amount=2_000)
    assert view["status"] == "succeeded", view.get("failure_code")
    listing = (await cli(stack, "attention")).stdout
    assert "foreign_psp_event" in listing and payment in listing


async def test_another_merchants_adyen_account_cannot_hold_a_payment_it_does_not_own(
    stack: Stack, adyen: AdyenSandboxControl, globex_psps: SandboxServer, tmp_path: Path
) -> None:
    """The same with Adyen: globex's HMAC key signs a chargeback naming the default merchant's
    payment under globex's merchant account; its account never told us of that payment."""
    reference = await known_adyen_payment(stack, adyen, 5_000)
    item = globex_item(
        unique("CB").upper(),
        "",
        eventCode="CHARGEBACK",
        originalReference=reference,
    )
    starter = starter_for(stack, merchants_file=merchants_file(tmp_path, globex_psps.url))
    async with starter as (_settings, http):
        response = await http.post("/webhooks/adyen/globex", content=adyen_delivery(item))
        assert (response.status_code, response.text) == (200, "[accepted]")
    with stack.database.transaction() as session:
        assert holds.held(session, Provider.ADYEN, reference) is None
    # the payment's own account is believed: its chargeback holds the payment
    own = adyen_item(
        unique("CB").upper(), "", SANDBOX_ADYEN_HMAC_KEY, eventCode="CHARGEBACK", originalReference=reference
    )
    assert (await post(stack, "adyen", adyen_delivery(own))).status_code == 200
    with stack.database.transaction() as session:
        assert holds.held(session, Provider.ADYEN, reference) is not None


def _returned_item() -> dict[str, object]:
    return {"sku": unique("SKU"), "quantity": 1, "unit_amount": 1_500, "tax_amount": 0, "restock": True}


async def test_another_merchants_account_cannot_reverse_a_refund_still_open(
    stack: Stack, sandbox: SandboxControl, globex_psps: SandboxServer, tmp_path: Path
) -> None:
    """The default merchant's refund is paid and waits for its returned goods; globex signs a
    `refund.updated` failed naming it. The proof the service gives that word names globex, which the
    refund is not: it is refused at the route, as naming a refund of another merchant's, and nothing
    is reversed (before, its books said failed while the money had left)."""
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    request_id = unique("open")
    body = refund_body(
        request_id, payment, amount=1_500, reason_code="changed_mind", items=[_returned_item()]
    )
    assert (await submit(stack, body)).status_code == 202
    view = await wait_for_status(stack, request_id, {"succeeded"})
    with stack.database.transaction() as session:
        before = ledger.balances(session, request_id)
    failure = refund_event(request_id, view["psp_refund_id"], "failed")
    starter = starter_for(stack, merchants_file=merchants_file(tmp_path, globex_psps.url))
    async with starter as (_settings, http):
        headers = webhook_headers(GLOBEX_STRIPE_WEBHOOK_SECRET, failure)
        response = await http.post("/webhooks/stripe/globex", content=failure, headers=headers)
        assert (response.status_code, response.headers["Refunds-Signalled"]) == (200, "0")
    handle = stack.client.get_workflow_handle(f"refund-{request_id}")
    listing = (await cli(stack, "attention")).stdout
    assert "foreign_psp_event" in listing and request_id in listing
    assert (await handle.query(RefundWorkflow.state)).status.value == "succeeded"
    with stack.database.transaction() as session:
        assert ledger.balances(session, request_id) == before != {}


async def test_another_merchants_account_cannot_swallow_a_genuine_late_failure(
    stack: Stack, sandbox: SandboxControl, globex_psps: SandboxServer, tmp_path: Path
) -> None:
    """Globex posts a failure of the default merchant's finished refund first (refused at the route:
    the refund is not globex's); the default account's genuine failure then still reverses the books
    (before, globex's took the late-failure workflow's id and the genuine one was taken for a
    duplicate and dropped: the books said paid, the customer was not)."""
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    view = await refund_through_pipeline(stack, payment, amount=1_200)
    request_id, psp_refund_id = view["request_id"], view["psp_refund_id"]
    failure = refund_event(request_id, psp_refund_id, "failed")
    starter = starter_for(stack, merchants_file=merchants_file(tmp_path, globex_psps.url))
    async with starter as (settings, http), worker_for(stack, settings):
        headers = webhook_headers(GLOBEX_STRIPE_WEBHOOK_SECRET, failure)
        response = await http.post("/webhooks/stripe/globex", content=failure, headers=headers)
        assert (response.status_code, response.headers["Refunds-Signalled"]) == (200, "0")
        await assert_not_started(stack, f"late-failure-globex~{request_id}-{psp_refund_id}")
    sandbox.fail_stripe_refund_late(psp_refund_id)  # the default account's own refund.failed follows
    failed = await wait_for_status(stack, request_id, {"failed"})
    assert failed["status"] == "failed"
    with stack.database.transaction() as session:
        assert ledger.balances(session, request_id) == {}


async def test_another_merchants_account_cannot_cut_short_a_genuine_late_failure_already_taken(
    stack: Stack, sandbox: SandboxControl, globex_psps: SandboxServer, tmp_path: Path
) -> None:
    """The default account's genuine failure of a finished refund is taken first (its late-failure run
    waits for a worker); globex then posts a failure of the same refund. Globex's run must not replace
    the genuine one (before, both had one id and the second start terminated the first: the genuine
    word, remembered as taken, was never weighed and the books said paid)."""
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    view = await refund_through_pipeline(stack, payment, amount=1_200)
    request_id, psp_refund_id = view["request_id"], view["psp_refund_id"]
    sandbox.set_stripe_webhook_url(None)  # the genuine word is delivered below, to the side service
    try:
        sandbox.fail_stripe_refund_late(psp_refund_id)
    finally:
        sandbox.set_stripe_webhook_url(f"{stack.base_url}/webhooks/stripe")
    genuine = refund_event(request_id, psp_refund_id, "failed")
    forged = refund_event(request_id, psp_refund_id, "failed")
    starter = starter_for(stack, merchants_file=merchants_file(tmp_path, globex_psps.url))
    async with starter as (settings, http):
        own = webhook_headers(stack.settings.stripe_webhook_secret, genuine)
        assert (await http.post("/webhooks/stripe", content=genuine, headers=own)).status_code == 200
        headers = webhook_headers(GLOBEX_STRIPE_WEBHOOK_SECRET, forged)
        response = await http.post("/webhooks/stripe/globex", content=forged, headers=headers)
        assert response.status_code == 200
        async with worker_for(stack, settings):
            late = stack.client.get_workflow_handle(f"refund-late-failure-{request_id}-{psp_refund_id}")
            assert await late.result() is True
    with stack.database.transaction() as session:
        assert ledger.balances(session, request_id) == {}


async def test_another_merchants_adyen_account_cannot_fail_a_dashboard_refund_before_it_is_booked(
    stack: Stack, adyen: AdyenSandboxControl, globex_psps: SandboxServer, tmp_path: Path
) -> None:
    """Globex signs, with its own HMAC key, a failed REFUND under the pspReference of a Customer Area
    refund of the default merchant's account, naming a payment of its own. The default account's
    genuine REFUND of that pspReference must still be booked to the default merchant's payment."""
    reference = await known_adyen_payment(stack, adyen, 8_000)
    psp_refund_id = unique("DASH").upper()
    forged = globex_item(
        psp_refund_id,
        "",
        success="false",
        originalReference=unique("GLOBEXPAY").upper(),
    )
    starter = starter_for(stack, merchants_file=merchants_file(tmp_path, globex_psps.url))
    async with starter as (settings, http), worker_for(stack, settings):
        response = await http.post("/webhooks/adyen/globex", content=adyen_delivery(forged))
        assert response.status_code == 200
        external = f"refund-external-adyen-globex~{psp_refund_id}"  # globex's own, apart from ours
        await eventually(lambda: workflow_completed(stack.client, external), bool)
    genuine = adyen_item(psp_refund_id, "", SANDBOX_ADYEN_HMAC_KEY, originalReference=reference)
    assert (await post(stack, "adyen", adyen_delivery(genuine))).status_code == 200

    async def booked() -> list[tuple[str | None, str, str]]:
        query = select(RefundRow).where(col(RefundRow.psp_refund_id) == psp_refund_id)
        with stack.database.transaction() as session:
            found = session.execute(query).scalars()
            return [(row.merchant, row.payment_reference, row.status) for row in found]

    rows = await eventually(booked, lambda found: any(r[1] == reference for r in found), timeout=15)
    assert (None, reference, "succeeded") in rows


# early fraud warnings ------------------------------------------------------------------------------

WARNINGS_REFUNDED = '[early_fraud_warnings]\nmode = "refund"\nrefund_up_to_major = 1000\n'


def _radar_warning(payment: str) -> tuple[str, str]:
    warning_id = unique("issfr")
    event = {
        "id": unique("evt_efw"),
        "object": "event",
        "type": "radar.early_fraud_warning.created",
        "data": {
            "object": {
                "id": warning_id,
                "object": "radar.early_fraud_warning",
                "actionable": True,
                "charge": unique("ch"),
                "payment_intent": payment,
                "fraud_type": "made_with_stolen_card",
            }
        },
    }
    return warning_id, json.dumps(event)


async def test_another_merchants_stripe_warning_cannot_refund_a_payment_it_does_not_own(
    stack: Stack, sandbox: SandboxControl, globex_psps: SandboxServer, tmp_path: Path
) -> None:
    """Globex's policy refunds warnings; it signs a Radar warning naming the default merchant's
    PaymentIntent. Its account does not know the payment: no refund is started (before, a refund of
    globex's was started for a payment of another's), the refusal is listed for ops."""
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    warning_id, event = _radar_warning(payment)
    merchants = merchants_file(tmp_path, globex_psps.url, globex_policy=WARNINGS_REFUNDED)
    async with starter_for(stack, merchants_file=merchants) as (_settings, http):
        headers = webhook_headers(GLOBEX_STRIPE_WEBHOOK_SECRET, event)
        response = await http.post("/webhooks/stripe/globex", content=event, headers=headers)
        assert (response.status_code, response.headers["Refunds-Signalled"]) == (200, "0")
    await assert_not_started(stack, f"globex~efw-stripe-{warning_id}")
    await assert_not_started(stack, f"efw-stripe-{warning_id}")
    listing = (await cli(stack, "attention")).stdout
    assert "foreign_psp_event" in listing and payment in listing
    assert sandbox.stripe_refunds(payment) == []


async def test_another_merchants_adyen_warning_cannot_refund_a_payment_it_does_not_own(
    stack: Stack, adyen: AdyenSandboxControl, globex_psps: SandboxServer, tmp_path: Path
) -> None:
    """The same with Adyen: a NOTIFICATION_OF_FRAUD under globex's merchant account and HMAC key,
    naming the default merchant's payment."""
    reference = await known_adyen_payment(stack, adyen, 5_000)
    notification = unique("NOF").upper()
    item = globex_item(
        notification,
        "",
        eventCode="NOTIFICATION_OF_FRAUD",
        originalReference=reference,
        amount={"value": 5_000, "currency": "EUR"},
    )
    merchants = merchants_file(tmp_path, globex_psps.url, globex_policy=WARNINGS_REFUNDED)
    async with starter_for(stack, merchants_file=merchants) as (_settings, http):
        response = await http.post("/webhooks/adyen/globex", content=adyen_delivery(item))
        assert (response.status_code, response.headers["Refunds-Signalled"]) == (200, "0")
    await assert_not_started(stack, f"globex~efw-adyen-{notification}")
    listing = (await cli(stack, "attention")).stdout
    assert "foreign_psp_event" in listing and reference in listing


# PayPal: events of every kind that can move something, from globex's own PayPal account -------------


async def _paypal_event(paypal: PayPalSandboxControl, capture: str, event_type: str) -> dict[str, Any]:
    """The payload of the default account's genuine `event_type` delivery for the capture."""

    async def found() -> list[dict[str, Any]]:
        return [
            event["payload"]
            for event in paypal.events()
            if event["payload"]["event_type"] == event_type and capture in json.dumps(event["payload"])
        ]

    events = await eventually(found, bool)
    return dict(events[-1])


def _as_globex(paypal: PayPalSandboxControl, payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    """Signed as PayPal signs what it sends to globex's own webhook (its webhook id)."""
    body = json.dumps(payload | {"id": unique("WH")})
    return body.encode(), paypal.sign(body, webhook_id=GLOBEX_PAYPAL_WEBHOOK)


async def test_another_merchants_paypal_account_cannot_hold_a_capture_it_does_not_own(
    stack: Stack, paypal: PayPalSandboxControl, globex_psps: SandboxServer, tmp_path: Path
) -> None:
    """A dispute and a reversal naming the default merchant's capture, as PayPal would sign them for
    globex's webhook: globex's account knows neither the capture nor the reversal, nothing is held,
    and the default merchant's refund of the capture goes through."""
    capture = paypal.seed_capture(amount="50.00", currency="EUR")
    dispute = {
        "id": unique("WH"),
        "event_type": "CUSTOMER.DISPUTE.CREATED",
        "resource": {
            "dispute_id": unique("PP-D"),
            "reason": "UNAUTHORISED",
            "disputed_transactions": [{"seller_transaction_id": capture}],
        },
    }
    reversal = {
        "id": unique("WH"),
        "event_type": "PAYMENT.CAPTURE.REVERSED",
        "resource": {
            "id": unique("REV").upper(),
            "status": "COMPLETED",
            "links": [{"rel": "up", "href": f"https://api.paypal.com/v2/payments/captures/{capture}"}],
        },
    }
    merchants = merchants_file(tmp_path, globex_psps.url, paypal=True)
    async with starter_for(stack, merchants_file=merchants) as (_settings, http):
        for payload in (dispute, reversal):
            body, headers = _as_globex(paypal, payload)
            response = await http.post("/webhooks/paypal/globex", content=body, headers=headers)
            assert response.status_code == 200, response.text
    with stack.database.transaction() as session:
        assert holds.held(session, Provider.PAYPAL, capture) is None
    view = await refund_through_pipeline(stack, capture, amount=2_000, provider="paypal")
    assert view["status"] == "succeeded", view.get("failure_code")
    listing = (await cli(stack, "attention")).stdout
    assert "foreign_psp_event" in listing and capture in listing


async def test_another_merchants_paypal_account_cannot_fail_or_book_a_refund_it_does_not_own(
    stack: Stack, paypal: PayPalSandboxControl, globex_psps: SandboxServer, tmp_path: Path
) -> None:
    """The default merchant's PayPal refund is paid and waits for its goods. Globex's webhook gets
    that refund's own event turned into a failure, and the same event without our request id (a
    refund made in PayPal's dashboard, as it would be booked): the first is refused at the route (the
    refund it names is not globex's), the second by globex's account, which cannot read the refund
    back (its booking run ends at once). The books stay as PayPal says, nothing is booked to globex."""
    capture = paypal.seed_capture(amount="50.00", currency="EUR")
    request_id = unique("pp-open")
    body = refund_body(request_id, capture, amount=1_500, provider="paypal", items=[_returned_item()])
    assert (await submit(stack, body)).status_code == 202
    view = await wait_for_status(stack, request_id, {"succeeded"})
    psp_refund_id = view["psp_refund_id"]
    with stack.database.transaction() as session:
        before = ledger.balances(session, request_id)
    genuine = await _paypal_event(paypal, psp_refund_id, "PAYMENT.CAPTURE.REFUNDED")
    failed = genuine | {"event_type": "PAYMENT.REFUND.FAILED"}
    failed["resource"] = genuine["resource"] | {"status": "FAILED"}
    ours = ("custom_id", "invoice_id")  # where our request id travels
    dashboard = genuine | {"resource": {k: v for k, v in genuine["resource"].items() if k not in ours}}
    merchants = merchants_file(tmp_path, globex_psps.url, paypal=True)
    async with starter_for(stack, merchants_file=merchants) as (settings, http), worker_for(stack, settings):
        for payload in (failed, dashboard):
            sent, headers = _as_globex(paypal, payload)
            response = await http.post("/webhooks/paypal/globex", content=sent, headers=headers)
            assert response.status_code == 200, response.text
        # globex's own booking of it: its account's PayPal holds no such refund, so the run ends
        external = f"refund-external-paypal-globex~{psp_refund_id}"
        await eventually(lambda: workflow_completed(stack.client, external), bool)
        assert await stack.client.get_workflow_handle(external).result() is False
        booking = external_request_id("paypal", psp_refund_id, "globex")
        assert "psp_update_unproven" in steps_of(stack, booking)
    listing = (await cli(stack, "attention")).stdout
    assert "foreign_psp_event" in listing and request_id in listing
    handle = stack.client.get_workflow_handle(f"refund-{request_id}")
    assert (await handle.query(RefundWorkflow.state)).status.value == "succeeded"
    with stack.database.transaction() as session:
        assert ledger.balances(session, request_id) == before != {}
        booked = session.execute(
            select(RefundRow).where(col(RefundRow.psp_refund_id) == psp_refund_id)
        ).scalars()
        assert [(row.request_id, row.merchant) for row in booked] == [(request_id, None)]


# a genuine delivery of each PSP, sent again on another merchant's route ----------------------------


async def test_a_genuine_delivery_sent_to_another_merchants_route_is_refused(
    stack: Stack, paypal: PayPalSandboxControl, globex_psps: SandboxServer, tmp_path: Path
) -> None:
    """Each PSP's signature is bound to the account it was sent to (Stripe's and Adyen's secrets,
    PayPal's webhook id): the default account's genuine delivery replayed on globex's route, and
    globex's on the default route, are refused as unsigned, whatever they name."""
    stripe_event = refund_event(unique("req"), unique("re"), "failed")
    own_item = adyen_item(unique("R").upper(), unique("req"), SANDBOX_ADYEN_HMAC_KEY, success="false")
    theirs = globex_item(unique("R").upper(), unique("req"))
    paypal_body = json.dumps({"id": unique("WH"), "event_type": "PAYMENT.REFUND.FAILED", "resource": {}})
    deliveries = [
        (
            "stripe",
            stripe_event,
            webhook_headers(stack.settings.stripe_webhook_secret, stripe_event),
            "globex",
        ),
        ("stripe", stripe_event, webhook_headers(GLOBEX_STRIPE_WEBHOOK_SECRET, stripe_event), ""),
        ("adyen", adyen_delivery(own_item), {}, "globex"),
        ("adyen", adyen_delivery(theirs), {}, ""),
        ("paypal", paypal_body, paypal.sign(paypal_body), "globex"),
        ("paypal", paypal_body, paypal.sign(paypal_body, webhook_id=GLOBEX_PAYPAL_WEBHOOK), ""),
    ]
    merchants = merchants_file(tmp_path, globex_psps.url, paypal=True)
    async with starter_for(stack, merchants_file=merchants) as (_settings, http):
        for provider, body, headers, route in deliveries:
            path = f"/webhooks/{provider}/{route}" if route else f"/webhooks/{provider}"
            response = await http.post(path, content=body, headers=headers)
            assert response.status_code == 400, (provider, route, response.text)
            assert response.json()["error"]["code"].startswith("signature_"), response.text


# a dashboard refund booked before its id named the merchant -----------------------------------------


def test_a_dashboard_refund_booked_under_its_bare_id_is_reversed_by_its_own_merchants_account_only(
    db: Database,
) -> None:
    """Before a dashboard refund's booking named the merchant, globex's was kept as
    `external:adyen:<id>`. Its own account's failure, now addressed to `external:adyen:globex~<id>`,
    still finds and reverses it; the same failure reported by another merchant's account, or by the
    default merchant's under the bare id, reverses nothing."""
    psp_refund_id = unique("DASH").upper()
    legacy = external_request_id("adyen", psp_refund_id)
    booked = FinishInput(
        request_id=legacy,
        provider=Provider.ADYEN,
        payment_reference=unique("PAY").upper(),
        order_id=legacy,
        status=RefundStatus.SUCCEEDED,
        amount=Money(value=700, currency="EUR"),
        psp_refund_id=psp_refund_id,
        merchant_id="globex",
    )
    steps = LedgerActivities(db, "default")
    env = ActivityEnvironment()
    env.run(steps.finish, booked)
    with db.transaction() as session:
        before = ledger.balances(session, legacy)

    def failure(merchant: str | None) -> LateFailureInput:
        update = PspRefundUpdate(
            psp_refund_id=psp_refund_id,
            status=PspRefundStatus.FAILED,
            amount=Money(value=700, currency="EUR"),
        )
        addressed = external_request_id("adyen", psp_refund_id, merchant)
        return LateFailureInput(
            provider=Provider.ADYEN, request_id=addressed, update=update, merchant_id=merchant
        )

    assert env.run(steps.reverse, failure("acme")) is False
    assert env.run(steps.reverse, failure(None)) is False
    with db.transaction() as session:
        assert ledger.balances(session, legacy) == before != {}
    assert env.run(steps.reverse, failure("globex")) is True
    with db.transaction() as session:
        assert ledger.balances(session, legacy) == {}
        row = refunds.get(session, legacy)
        assert row is not None and row.status == "failed"
