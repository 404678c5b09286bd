"""One merchant's PSP account moves only its own money: what its verified events name of another
merchant's payments and refunds changes nothing there."""

from __future__ import annotations

import json
from pathlib import Path

from adapters.db import holds
from adapters.db.payment_book import DatabasePaymentBook
from domain.contracts import PaymentRecord
from domain.status import PaymentState, Provider
from sandbox.adyen.control import AdyenSandboxControl
from sandbox.server import SandboxServer
from sandbox.stripe.control import SandboxControl
from sandbox.stripe.objects import webhook_headers
from tests.conftest import Stack, starter_for
from tests.deliveries import adyen_delivery, adyen_item, post
from tests.fixtures.merchants import fixture_globex_psps  # noqa: F401  (a fixture, used by name)
from tests.flows import cli, known_adyen_payment, refund_through_pipeline
from tests.helpers import (
    GLOBEX_ADYEN_ACCOUNT,
    GLOBEX_HMAC,
    GLOBEX_STRIPE_WEBHOOK_SECRET,
    merchants_file,
    unique,
)
from workers.psp_wiring.adyen import SANDBOX_ADYEN_HMAC_KEY


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
    item = adyen_item(
        unique("CB").upper(),
        "",
        GLOBEX_HMAC,
        eventCode="CHARGEBACK",
        originalReference=reference,
        merchantAccountCode=GLOBEX_ADYEN_ACCOUNT,
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
