"""Adyen's Settlement details report (CSV), read for reconciliation: Adyen lists no modifications
through its Checkout API, so the report of each payout batch is where its refunds are listed.

Columns are read by their published header names, never by position (an account can add columns
and reorder them): `Merchant Account`, `Psp Reference` (the payment), `Type`, `Modification
Reference` (the refund), `Gross Currency`, `Gross Debit (GC)`, `Gross Credit (GC)`. A refund is a
`Refunded` row; a `RefundedReversed` row for the same modification is the refund failing after it
settled. Amounts are decimals in the currency's major units, converted exactly.
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal, InvalidOperation

from domain.money import Money, currency_exponent
from domain.reconciliation import PspRefundRecord
from domain.status import PspRefundStatus

REQUIRED = ("Merchant Account", "Psp Reference", "Type", "Modification Reference", "Gross Currency")
REFUNDED, REVERSED = "Refunded", "RefundedReversed"
MAX_ROWS = 1_000_000


class ReportError(ValueError):
    """A report that is not a Settlement details report, or a row that cannot be read."""


def refunds_in_report(report: str, merchant_account: str) -> list[PspRefundRecord]:
    """The refunds of `merchant_account` the report lists (another account's rows are not ours),
    each once: reversed where a `RefundedReversed` row follows its `Refunded` one."""
    reader = csv.DictReader(io.StringIO(report.lstrip("\ufeff")))
    missing = [name for name in REQUIRED if name not in (reader.fieldnames or [])]
    if missing:
        raise ReportError(f"not a Settlement details report: no {', '.join(missing)} column")
    found: dict[str, PspRefundRecord] = {}
    for line, row in enumerate(reader, start=2):
        if line > MAX_ROWS:
            raise ReportError(f"more than {MAX_ROWS} rows: split the report by batch")
        kind = (row.get("Type") or "").strip()
        if (
            kind not in (REFUNDED, REVERSED)
            or (row.get("Merchant Account") or "").strip() != merchant_account
        ):
            continue
        refund_id = (row.get("Modification Reference") or "").strip()
        payment = (row.get("Psp Reference") or "").strip()
        if not refund_id or not payment:
            raise ReportError(f"line {line}: a {kind} row names its payment and its refund")
        amount = _gross(row, line)
        if kind == REVERSED:
            earlier = found.get(refund_id)
            found[refund_id] = PspRefundRecord(
                psp_refund_id=refund_id,
                payment_reference=payment,
                amount=earlier.amount if earlier else amount,
                status=PspRefundStatus.FAILED,
            )
        elif refund_id not in found:
            found[refund_id] = PspRefundRecord(
                psp_refund_id=refund_id,
                payment_reference=payment,
                amount=amount,
                status=PspRefundStatus.SUCCEEDED,
            )
    return list(found.values())


def _gross(row: dict[str, str | None], line: int) -> Money:
    """The row's gross amount (debit for a refund, credit for its reversal) in minor units."""
    currency = (row.get("Gross Currency") or "").strip().upper()
    if len(currency) != 3 or not currency.isalpha():
        raise ReportError(f"line {line}: {currency!r} is not a currency code")
    text = (row.get("Gross Debit (GC)") or "").strip() or (row.get("Gross Credit (GC)") or "").strip()
    try:
        exponent = currency_exponent(currency)
        units = Decimal(text).scaleb(exponent)
    except (InvalidOperation, ValueError, KeyError) as err:
        raise ReportError(f"line {line}: {text!r} {currency!r} is not an amount") from err
    if not units.is_finite() or units != units.to_integral_value() or units <= 0:
        raise ReportError(f"line {line}: {text!r} is not a positive amount in {currency}'s minor units")
    return Money(value=int(units), currency=currency)
