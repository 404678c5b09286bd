"""The sandbox's Settlement details report, in the column layout Adyen publishes for it (header names
and order of its standard columns; amounts in major units, times in the account's zone, here UTC).

One `Settled` row per captured payment, one `Refunded` row per refund that succeeded, and a
`RefundedReversed` row after it when the refund failed after it settled (REFUNDED_REVERSED).
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal

from sandbox.store import StoreTx

COLUMNS = (
    "Company Account",
    "Merchant Account",
    "Psp Reference",
    "Merchant Reference",
    "Payment Method",
    "Creation Date",
    "TimeZone",
    "Type",
    "Modification Reference",
    "Gross Currency",
    "Gross Debit (GC)",
    "Gross Credit (GC)",
    "Exchange Rate",
    "Net Currency",
    "Net Debit (NC)",
    "Net Credit (NC)",
    "Commission (NC)",
    "Markup (NC)",
    "Scheme Fees (NC)",
    "Interchange (NC)",
    "Payment Method Variant",
    "Modification Merchant Reference",
    "Batch Number",
)
_EXPONENTS = {"JPY": 0, "KRW": 0, "KWD": 3, "BHD": 3}
COMPANY = "SandboxCompany"


def _major(units: int, currency: str) -> str:
    exponent = _EXPONENTS.get(currency, 2)
    return f"{Decimal(units).scaleb(-exponent):.{exponent}f}"


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def settlement_report(tx: StoreTx, merchant_account: str | None, batch: int = 1) -> str:
    """The report of everything the sandbox settled (for one merchant account, when given)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    payments = tx.conn.execute(
        "SELECT psp_reference, merchant_account, merchant_reference, amount, currency, created_ms"
        " FROM adyen_payments WHERE state = 'captured' ORDER BY created_ms, psp_reference"
    ).fetchall()
    accounts = {row[0]: row[1] for row in payments}
    for reference, account, merchant_reference, amount, currency, created in payments:
        if merchant_account in (None, account):
            money = _major(amount, currency)
            writer.writerow(
                _row(
                    account,
                    reference,
                    merchant_reference,
                    created,
                    "Settled",
                    reference,
                    currency,
                    "",
                    money,
                    batch,
                )
            )
    refunds = tx.conn.execute(
        "SELECT psp_reference, payment_psp_reference, merchant_reference, amount, currency, status,"
        " created_ms FROM adyen_modifications WHERE kind = 'refund'"
        " AND status IN ('succeeded', 'refunded_reversed') ORDER BY seq"
    ).fetchall()
    for reference, payment, merchant_reference, amount, currency, status, created in refunds:
        account = (
            accounts.get(payment)
            or tx.conn.execute(
                "SELECT merchant_account FROM adyen_payments WHERE psp_reference = ?", (payment,)
            ).fetchone()[0]
        )
        if merchant_account not in (None, account):
            continue
        money = _major(amount, currency)
        writer.writerow(
            _row(
                account,
                payment,
                merchant_reference,
                created,
                "Refunded",
                reference,
                currency,
                money,
                "",
                batch,
            )
        )
        if status == "refunded_reversed":
            writer.writerow(
                _row(
                    account,
                    payment,
                    merchant_reference,
                    created,
                    "RefundedReversed",
                    reference,
                    currency,
                    "",
                    money,
                    batch,
                )
            )
    return out.getvalue()


def _row(
    account: str,
    payment: str,
    merchant_reference: str,
    created_ms: int,
    kind: str,
    modification: str,
    currency: str,
    debit: str,
    credit: str,
    batch: int,
) -> list[str]:
    return [
        COMPANY,
        account,
        payment,
        merchant_reference,
        "visa",
        _when(created_ms),
        "UTC",
        kind,
        modification,
        currency,
        debit,
        credit,
        "1",
        currency,
        debit,
        credit,
        "",
        "",
        "",
        "",
        "visaclassic",
        merchant_reference if kind != "Settled" else "",
        str(batch),
    ]
