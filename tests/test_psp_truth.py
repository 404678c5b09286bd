"""The PSP is the truth: an outcome moves the books only with the service's proof (and the PSP's own
word where it can be read back), every refund of a payment counts whoever made it, and a reversal
gives the over-refund guard back what the PSP gave back. Through the running product."""

from __future__ import annotations

import uuid

import stripe

from adapters.db import ledger, refunds
from adapters.db.payment_book import DatabasePaymentBook
from adapters.psp.paypal_transformers import paypal_reference
from domain.contracts import ExternalRefundInput, LateFailureInput, PspRefundUpdate
from domain.money import Money
from domain.naming import external_request_id
from domain.status import Provider, PspRefundStatus
from sandbox.adyen.control import AdyenSandboxControl
from sandbox.paypal.control import PayPalSandboxControl
from sandbox.stripe.control import SandboxControl
from tests.conftest import Stack
from tests.flows import (
    cli,
    known_adyen_payment,
    refund_through_pipeline,
    reservation_state,
    steps_of,
    submit,
    wait_for_status,
)
from tests.helpers import eventually, refund_body, unique, workflow_completed
from workers.psp_wiring.stripe import SANDBOX_STRIPE_API_KEY
from workflows.external_refund import ExternalRefundWorkflow
from workflows.late_failure import LateRefundFailureWorkflow

FINAL = {"succeeded", "failed", "needs_attention", "rejected"}


def _balances(stack: Stack, request_id: str) -> dict[tuple[str, str], int]:
    with stack.database.transaction() as session:
        return ledger.balances(session, request_id)


async def test_workflows_started_by_hand_with_a_forged_outcome_move_no_money(
    stack: Stack, sandbox: SandboxControl
) -> None:
    """An insider with Temporal access starts the late-failure workflow naming a paid refund, and
    a dashboard-refund workflow naming a payment: no proof, so nothing is reversed or booked, both
    are written to the trail, and `refunds attention` lists them."""
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    view = await refund_through_pipeline(stack, payment, amount=2_000)
    request_id, psp_refund_id = view["request_id"], view["psp_refund_id"]
    before = _balances(stack, request_id)
    queue = stack.settings.task_queue

    failed = PspRefundUpdate(psp_refund_id=psp_refund_id, status=PspRefundStatus.FAILED)
    late = await stack.client.start_workflow(
        LateRefundFailureWorkflow.run,
        LateFailureInput(provider=Provider.STRIPE, request_id=request_id, update=failed),
        id=f"refund-late-failure-forged-{uuid.uuid4().hex[:8]}",
        task_queue=queue,
    )
    assert await late.result() is False

    invented = f"re_invented_{uuid.uuid4().hex[:10]}"
    paid = PspRefundUpdate(
        psp_refund_id=invented, status=PspRefundStatus.SUCCEEDED, amount=Money(value=3_000, currency="EUR")
    )
    external = await stack.client.start_workflow(
        ExternalRefundWorkflow.run,
        ExternalRefundInput(provider=Provider.STRIPE, payment_reference=payment, psp_refund_id=invented),
        id=f"refund-external-stripe-{invented}",
        task_queue=queue,
        start_signal="psp_refund_update",
        start_signal_args=[paid],
    )
    booking = external_request_id("stripe", invented)

    async def refused() -> list[str]:
        return steps_of(stack, booking)

    # refused and written down; the run waits on for a proven word about that refund id
    assert await eventually(refused, lambda steps: "psp_update_unproven" in steps)
    await external.terminate("test done")

    assert _balances(stack, request_id) == before != {}
    with stack.database.transaction() as session:
        assert refunds.get(session, request_id).status == "succeeded"
        assert refunds.get(session, booking) is None
    assert "psp_update_unproven" in steps_of(stack, request_id)
    listing = (await cli(stack, "attention")).stdout
    assert request_id in listing and "unproven_psp_update" in listing
    # the payment is still refundable in full at our guard: 30.00 EUR left, not 0.00
    second = await refund_through_pipeline(stack, payment, amount=3_000)
    assert second["status"] == "succeeded"


async def test_a_payment_refunded_again_after_a_reversed_late_failure(
    stack: Stack, sandbox: SandboxControl
) -> None:
    """The PSP failed the whole refund after paying it: the guard gets the amount back, so the
    customer can be refunded again (before, "0.00 EUR left to refund" while the PSP showed nothing)."""
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    view = await refund_through_pipeline(stack, payment, amount=5_000)
    request_id = view["request_id"]
    sandbox.fail_stripe_refund_late(view["psp_refund_id"])  # its refund.failed reaches the service
    await wait_for_status(stack, request_id, {"failed"})
    assert reservation_state(stack, request_id) == "released"  # in the reversal's own transaction

    again = await refund_through_pipeline(stack, payment, amount=5_000)
    assert again["status"] == "succeeded", again.get("failure_message")


async def test_adyens_everything_still_refundable_counts_earlier_refunds(
    stack: Stack, adyen: AdyenSandboxControl
) -> None:
    """Adyen cannot be asked what is left: our record is. After 30.00 of 50.00 is refunded, a
    request with no amount asks for 20.00, and the payment book agrees."""
    reference = await known_adyen_payment(stack, adyen, 5_000)
    first = unique("adyen-part")
    assert (await submit(stack, refund_body(first, reference, amount=3_000, provider="adyen"))).is_success
    assert (await wait_for_status(stack, first, FINAL))["status"] == "succeeded"
    book = DatabasePaymentBook(stack.database)
    assert book.get(Provider.ADYEN, reference).amount_refunded == 3_000  # type: ignore[union-attr]

    rest = unique("adyen-rest")
    assert (await submit(stack, refund_body(rest, reference, provider="adyen"))).is_success
    view = await wait_for_status(stack, rest, FINAL)
    assert view["status"] == "succeeded", view.get("failure_message")
    assert view["amount"] == {"value": 2_000, "currency": "EUR"}
    assert [m["amount"] for m in adyen.modifications(reference)] == [3_000, 2_000]
    assert book.get(Provider.ADYEN, reference).amount_refunded == 5_000  # type: ignore[union-attr]


async def test_a_dashboard_refund_on_a_payment_we_never_refunded_counts(
    stack: Stack, adyen: AdyenSandboxControl
) -> None:
    """45.00 of 50.00 refunded in Adyen's Customer Area before any refund of ours: our guard counts
    it (before, it was dropped for want of a payment row), so 20.00 is refused and "everything"
    is 5.00."""
    reference = await known_adyen_payment(stack, adyen, 5_000)
    psp_refund_id = adyen.dashboard_refund(reference, 4_500)
    external = f"refund-external-adyen-{psp_refund_id}"
    await eventually(lambda: workflow_completed(stack.client, external), bool)
    assert await stack.client.get_workflow_handle(external).result() is True

    too_much = unique("adyen-over")
    assert (await submit(stack, refund_body(too_much, reference, amount=2_000, provider="adyen"))).is_success
    refused = await wait_for_status(stack, too_much, FINAL)
    assert (refused["status"], refused["failure_code"]) == ("failed", "refund_exceeds_capture")

    rest = unique("adyen-left")
    assert (await submit(stack, refund_body(rest, reference, provider="adyen"))).is_success
    view = await wait_for_status(stack, rest, FINAL)
    assert (view["status"], view["amount"]["value"]) == ("succeeded", 500)


async def test_a_dashboard_refund_adyen_fails_later_is_reversed(
    stack: Stack, adyen: AdyenSandboxControl
) -> None:
    """REFUND_FAILED after a Customer Area refund was booked: reversed in the books, and its amount
    is refundable again at our guard."""
    reference = await known_adyen_payment(stack, adyen, 5_000)
    psp_refund_id = adyen.dashboard_refund(reference, 4_000)
    request_id = external_request_id("adyen", psp_refund_id)
    workflow = f"refund-external-adyen-{psp_refund_id}"
    await eventually(lambda: workflow_completed(stack.client, workflow), bool)
    assert _balances(stack, request_id) != {}

    adyen.fail_refund_late(psp_refund_id)

    async def status() -> str | None:
        with stack.database.transaction() as session:
            row = refunds.get(session, request_id)
            return row.status if row else None

    assert await eventually(status, lambda s: s == "failed") == "failed"
    assert _balances(stack, request_id) == {}
    assert reservation_state(stack, request_id) == "released"
    again = unique("adyen-again")
    assert (await submit(stack, refund_body(again, reference, amount=4_000, provider="adyen"))).is_success
    assert (await wait_for_status(stack, again, FINAL))["status"] == "succeeded"


async def test_a_stripe_dashboard_refund_failed_later_is_reversed(
    stack: Stack, sandbox: SandboxControl
) -> None:
    """A refund made in Stripe's dashboard (nothing of ours on it) is booked on `refund.updated`;
    `refund.failed` later reverses it, read back at Stripe first, and gives the guard its amount back."""
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    client = stripe.StripeClient(SANDBOX_STRIPE_API_KEY, base_addresses={"api": stack.sandbox_url})
    made = client.v1.refunds.create({"payment_intent": payment, "amount": 4_000})
    request_id = external_request_id("stripe", made.id)

    async def status() -> str | None:
        with stack.database.transaction() as session:
            row = refunds.get(session, request_id)
            return row.status if row else None

    assert await eventually(status, lambda s: s == "succeeded") == "succeeded"
    assert _balances(stack, request_id) != {}

    sandbox.fail_stripe_refund_late(made.id)
    assert await eventually(status, lambda s: s == "failed") == "failed"
    assert _balances(stack, request_id) == {}
    assert reservation_state(stack, request_id) == "released"
    again = await refund_through_pipeline(stack, payment, amount=4_000)
    assert again["status"] == "succeeded", again.get("failure_message")


async def test_a_request_id_paypals_custom_id_cannot_hold_travels_as_an_alias(
    stack: Stack, paypal: PayPalSandboxControl
) -> None:
    """PayPal holds 127 characters in a refund's `custom_id` and publishes `[A-Za-z0-9-_.,]` for it;
    our ids reach 128 and may carry `:` (or a merchant's `~`). Such an id is sent as its alias and
    every PayPal answer and event naming the alias is traced back to the refund."""
    capture = paypal.seed_capture(amount="60.00", currency="EUR")
    request_id = ("pp:" + uuid.uuid4().hex * 4)[:128]
    body = refund_body(
        request_id, capture, amount=1_250, provider="paypal", order_id=unique("o"), customer_id=unique("c")
    )
    assert (await submit(stack, body)).is_success
    view = await wait_for_status(stack, request_id, FINAL)
    assert view["status"] == "succeeded", view.get("failure_message")
    [refund] = paypal.refunds(capture)
    assert refund["custom_id"] == paypal_reference(request_id) != request_id
    assert len(refund["custom_id"]) <= 127
    with stack.database.transaction() as session:  # its event named ours, not a dashboard refund
        assert refunds.get(session, external_request_id("paypal", refund["id"])) is None
