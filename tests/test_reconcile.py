"""Reconciliation: the PSP's refunds (through the adapters, over HTTP to the sandboxes) against the
books. Each kind of difference is injected where it arises in real life and must be found."""

from __future__ import annotations

import pytest
import stripe

from adapters.db.models import RefundRow
from domain.money import Money
from domain.reconciliation import BookedRefund, DiscrepancyKind, PspRefundRecord, reconcile
from domain.status import PspRefundStatus
from sandbox.paypal.control import PayPalSandboxControl
from sandbox.stripe.control import SandboxControl
from tests.conftest import Stack
from tests.flows import SINCE, cli, refund_through_pipeline, run_reconcile


def eur(value: int) -> Money:
    return Money(value=value, currency="EUR")


def theirs(
    refund_id: str, value: int, status: PspRefundStatus = PspRefundStatus.SUCCEEDED
) -> PspRefundRecord:
    return PspRefundRecord(
        psp_refund_id=refund_id, payment_reference="pi_1", amount=eur(value), status=status
    )


def ours(refund_id: str, value: int, succeeded: bool = True, paid_out: int | None = None) -> BookedRefund:
    return BookedRefund(
        request_id=f"req-{refund_id}",
        psp_refund_id=refund_id,
        payment_reference="pi_1",
        amount=eur(value),
        succeeded=succeeded,
        paid_out=value if paid_out is None and succeeded else (paid_out or 0),
    )


@pytest.mark.parametrize(
    ("psp", "books", "expected"),
    [
        ([theirs("re_1", 100)], [ours("re_1", 100)], []),
        ([theirs("re_1", 100)], [], [DiscrepancyKind.MISSING_IN_LEDGER]),
        ([theirs("re_1", 100, PspRefundStatus.FAILED)], [], []),  # no money moved
        ([theirs("re_1", 100, PspRefundStatus.PENDING)], [ours("re_1", 100)], []),  # not decided yet
        ([], [ours("re_1", 100)], [DiscrepancyKind.MISSING_AT_PSP]),
        ([], [ours("re_1", 100, succeeded=False)], []),
        ([theirs("re_1", 100)], [ours("re_1", 90)], [DiscrepancyKind.AMOUNT_MISMATCH]),
        ([theirs("re_1", 100)], [ours("re_1", 100, paid_out=0)], [DiscrepancyKind.AMOUNT_MISMATCH]),
        (
            [theirs("re_1", 100, PspRefundStatus.FAILED)],
            [ours("re_1", 100)],
            [DiscrepancyKind.STATUS_MISMATCH],
        ),
        ([theirs("re_1", 100)], [ours("re_1", 100, succeeded=False)], [DiscrepancyKind.STATUS_MISMATCH]),
    ],
)
def test_each_kind_of_difference(
    psp: list[PspRefundRecord], books: list[BookedRefund], expected: list[DiscrepancyKind]
) -> None:
    assert [d.kind for d in reconcile(psp, books)] == expected


def tamper(stack: Stack, request_id: str, **changes: object) -> None:
    with stack.database.transaction() as session:
        row = session.get(RefundRow, request_id)
        assert row is not None
        for name, value in changes.items():
            setattr(row, name, value)


async def test_stripe_differences_are_all_found(stack: Stack, sandbox: SandboxControl) -> None:
    clean, by_hand, tampered, flipped, vanished = (
        sandbox.seed_stripe_payment(amount=5_000, currency="EUR") for _ in range(5)
    )
    for payment in (clean, tampered, flipped, vanished):
        assert (await refund_through_pipeline(stack, payment, amount=1_000))["status"] == "succeeded"

    # a refund made in Stripe's dashboard while its webhooks were lost: the books never heard of it
    sandbox.set_stripe_webhook_url(None)
    try:
        dashboard = stripe.StripeClient(
            stack.settings.stripe_api_key, base_addresses={"api": stack.sandbox_url}
        )
        unheard = dashboard.v1.refunds.create({"payment_intent": by_hand, "amount": 700})
    finally:
        sandbox.set_stripe_webhook_url(f"{stack.base_url}/webhooks/stripe")
    # the books' side: an amount edited, a status lost, a refund id the PSP never issued
    with stack.database.transaction() as session:
        rows = {row.payment_reference: row.request_id for row in session.query(RefundRow).all()}
    tamper(stack, rows[tampered], amount=900)
    tamper(stack, rows[flipped], status="failed")
    tamper(stack, rows[vanished], psp_refund_id="re_never_issued")

    code, found = await run_reconcile(stack, "stripe", clean, by_hand, tampered, flipped, vanished)

    assert code == 1
    assert sorted((d["kind"], d["payment_reference"]) for d in found) == sorted(
        [
            ("missing_in_ledger", by_hand),
            ("amount_mismatch", tampered),
            ("status_mismatch", flipped),
            ("missing_at_psp", vanished),
            ("missing_in_ledger", vanished),  # the refund Stripe did make there is now unaccounted for
        ]
    )
    assert unheard.id in {d["psp_refund_id"] for d in found if d["kind"] == "missing_in_ledger"}
    # typed for scripts, money as every --json gives it (before: "ours": "", "theirs": "7.00 EUR")
    mismatch = next(d for d in found if d["kind"] == "amount_mismatch")
    assert {key for key in mismatch if key in ("ours", "theirs")} == set()
    for side in ("ours_amount", "ledger_amount", "theirs_amount"):
        assert set(mismatch[side]) == {"value", "currency"} and isinstance(mismatch[side]["value"], int)
    assert mismatch["ours_amount"] != mismatch["theirs_amount"]
    flipped_row = next(d for d in found if d["kind"] == "status_mismatch")
    assert (flipped_row["ours_status"], flipped_row["theirs_amount"]) == ("not succeeded", None)
    assert await run_reconcile(stack, "stripe", clean) == (0, [])


async def test_paypal_differences_are_found_per_capture(stack: Stack, paypal: PayPalSandboxControl) -> None:
    capture = paypal.seed_capture(amount="50.00", currency="EUR")
    assert (await refund_through_pipeline(stack, capture, amount=1_000, provider="paypal"))[
        "status"
    ] == "succeeded"
    assert await run_reconcile(stack, "paypal", capture) == (0, [])

    paypal.set_webhook_url(None)
    try:
        unheard = paypal.dashboard_refund(capture, "5.00")
    finally:
        paypal.set_webhook_url(f"{stack.base_url}/webhooks/paypal")
    code, found = await run_reconcile(stack, "paypal", capture)
    assert code == 1
    assert [(d["kind"], d["psp_refund_id"]) for d in found] == [("missing_in_ledger", unheard["id"])]


async def test_adyen_cannot_be_listed_and_says_so(stack: Stack) -> None:
    done = await cli(stack, "reconcile", "--provider", "adyen", "--since", SINCE)
    assert (done.returncode, "not_supported" in done.stderr) == (2, True)
