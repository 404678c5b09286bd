"""Reconciliation: the PSP's refunds (through the adapters, over HTTP to the sandboxes) against the
books. Each kind of difference is injected where it arises in real life and must be found."""

from __future__ import annotations

from pathlib import Path

import pytest
import stripe

from adapters.db.models import RefundRow
from adapters.psp.adyen_settlement import ReportError, refunds_in_report
from domain.money import Money
from domain.reconciliation import BookedRefund, DiscrepancyKind, PspRefundRecord, reconcile
from domain.status import PspRefundStatus
from sandbox.adyen.control import AdyenSandboxControl
from sandbox.paypal.control import PayPalSandboxControl
from sandbox.stripe.control import SandboxControl
from tests.conftest import Stack
from tests.flows import SINCE, cli, known_adyen_payment, refund_through_pipeline, run_reconcile


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


async def test_paypal_finds_a_refund_on_a_capture_the_books_never_saw(
    stack: Stack, paypal: PayPalSandboxControl
) -> None:
    """Before: without --payment PayPal listed nothing (a capture's refunds are on its order, and the
    books name no capture they never refunded); Transaction Search lists the account's refunds."""
    capture = paypal.seed_capture(amount="40.00", currency="EUR")  # never refunded through us
    paypal.set_webhook_url(None)
    try:
        unheard = paypal.dashboard_refund(capture, "7.00")
    finally:
        paypal.set_webhook_url(f"{stack.base_url}/webhooks/paypal")
    code, found = await run_reconcile(stack, "paypal")
    missing = [d for d in found if d["psp_refund_id"] == unheard["id"]]
    assert code == 1 and [(d["kind"], d["payment_reference"]) for d in missing] == [
        ("missing_in_ledger", capture)
    ]
    assert missing[0]["theirs_amount"] == {"value": 700, "currency": "EUR"}


async def test_adyen_cannot_be_listed_and_says_so(stack: Stack) -> None:
    done = await cli(stack, "reconcile", "--provider", "adyen", "--since", SINCE)
    assert (done.returncode, "not_supported" in done.stderr) == (2, True)


# Adyen: its Settlement details report, as Adyen publishes its columns ----------------------------

PUBLISHED_HEADER = (
    "Company Account,Merchant Account,Psp Reference,Merchant Reference,Payment Method,Creation Date,"
    "TimeZone,Type,Modification Reference,Gross Currency,Gross Debit (GC),Gross Credit (GC),Exchange Rate,"
    "Net Currency,Net Debit (NC),Net Credit (NC),Commission (NC),Markup (NC),Scheme Fees (NC),"
    "Interchange (NC),Payment Method Variant,Modification Merchant Reference,Batch Number"
)


def test_the_report_reads_as_adyen_publishes_it() -> None:
    """Adyen's own example rows (a Settled and a Chargeback line of its published sample), a refund,
    its reversal, another account's refund and a fee line: only this account's refunds come out."""
    report = "\n".join(
        [
            PUBLISHED_HEADER,
            "TestCompany,TestMerchant,1813702551707653,3vpzf7,visa,2013-06-03 11:26:49,CET,Settled,"
            "1713702551795048,GBP,,5.00,1,GBP,,4.88,,0.04,0.01,0.07,visaclassic,,",
            "TestCompany,TestMerchant,1313642467023511,324959451,visa,2013-03-26 22:37:26,CET,Chargeback,"
            "2313642467170922,EUR,349.99,,1,EUR,357.49,,7.5,,,,visaclassic,,",
            "TestCompany,TestMerchant,8813702551707111,ord-1,visa,2013-06-04 10:00:00,CET,Refunded,"
            "8823702551707222,JPY,1200,,1,JPY,1200,,,,,,visaclassic,req-1,4",
            "TestCompany,TestMerchant,8813702551707333,ord-2,visa,2013-06-04 10:00:00,CET,Refunded,"
            "8823702551707444,EUR,12.50,,1,EUR,12.50,,,,,,visaclassic,req-2,4",
            "TestCompany,TestMerchant,8813702551707333,ord-2,visa,2013-06-05 10:00:00,CET,RefundedReversed,"
            "8823702551707444,EUR,,12.50,1,EUR,,12.50,,,,,visaclassic,req-2,4",
            "TestCompany,OtherMerchant,9913702551707555,ord-3,visa,2013-06-04 10:00:00,CET,Refunded,"
            "9923702551707666,EUR,3.00,,1,EUR,3.00,,,,,,visaclassic,req-3,4",
            "TestCompany,TestMerchant,,,,2013-06-11 04:55:40,BST,Fee,Transaction Fees June 2013,GBP,,,,GBP,"
            "0.40,,,,,,,,4",
        ]
    )
    found = {r.psp_refund_id: r for r in refunds_in_report(report, "TestMerchant")}
    assert set(found) == {"8823702551707222", "8823702551707444"}
    assert found["8823702551707222"].amount == Money(value=1_200, currency="JPY")  # no minor unit
    assert (found["8823702551707444"].amount, found["8823702551707444"].status) == (
        Money(value=1_250, currency="EUR"),
        PspRefundStatus.FAILED,  # reversed after it settled
    )
    assert found["8823702551707444"].payment_reference == "8813702551707333"


def test_the_sandbox_writes_the_report_in_the_published_layout() -> None:
    from sandbox.adyen.settlement_report import COLUMNS

    assert ",".join(COLUMNS) == PUBLISHED_HEADER


@pytest.mark.parametrize(
    ("report", "says"),
    [
        ("Company Account,Psp Reference\nx,y", "no Merchant Account, Type, Modification Reference"),
        (
            PUBLISHED_HEADER + "\nC,TestMerchant,P,o,visa,d,UTC,Refunded,R,EUR,12.505,,1,EUR,,,,,,,v,,1",
            "12.505",
        ),
        (
            PUBLISHED_HEADER + "\nC,TestMerchant,P,o,visa,d,UTC,Refunded,R,EUR,-3.00,,1,EUR,,,,,,,v,,1",
            "positive",
        ),
        (
            PUBLISHED_HEADER + "\nC,TestMerchant,,o,visa,d,UTC,Refunded,R,EUR,3.00,,1,EUR,,,,,,,v,,1",
            "names its payment",
        ),
        (
            PUBLISHED_HEADER + "\nC,TestMerchant,P,o,visa,d,UTC,Refunded,R,E1,3.00,,1,EUR,,,,,,,v,,1",
            "currency code",
        ),
    ],
)
def test_a_report_that_cannot_be_read_says_where(report: str, says: str) -> None:
    with pytest.raises(ReportError) as refused:
        refunds_in_report(report, "TestMerchant")
    assert says in str(refused.value)


async def test_adyen_differences_are_all_found_from_its_settlement_report(
    stack: Stack, adyen: AdyenSandboxControl, tmp_path: Path
) -> None:
    clean, tampered, flipped, vanished = [await known_adyen_payment(stack, adyen, 5_000) for _ in range(4)]
    for payment in (clean, tampered, flipped, vanished):
        view = await refund_through_pipeline(stack, payment, amount=1_000, provider="adyen")
        assert view["status"] == "succeeded", view
    with stack.database.transaction() as session:
        rows = {row.payment_reference: row.request_id for row in session.query(RefundRow).all()}
    tamper(stack, rows[tampered], amount=900)
    tamper(stack, rows[flipped], status="failed")
    tamper(stack, rows[vanished], psp_refund_id="8800000000000000")
    report = tmp_path / "settlement_detail_report_batch_1.csv"
    report.write_text(adyen.settlement_report(stack.settings.adyen_merchant_account))

    code, found = await run_reconcile(stack, "adyen", clean, tampered, flipped, vanished, report=str(report))
    assert code == 1
    assert sorted((d["kind"], d["payment_reference"]) for d in found) == sorted(
        [
            ("amount_mismatch", tampered),
            ("status_mismatch", flipped),
            ("missing_at_psp", vanished),
            ("missing_in_ledger", vanished),  # the refund Adyen did make there is now unaccounted for
        ]
    )
    assert await run_reconcile(stack, "adyen", clean, report=str(report)) == (0, [])
    refused = await cli(stack, "reconcile", "--provider", "stripe", "--since", SINCE, "--report", str(report))
    assert refused.returncode == 2 and refused.stderr.startswith("not_supported: stripe lists its refunds")
