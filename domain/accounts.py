"""The chart of accounts, per merchant and currency: `<merchant>:<account>[:<provider>]:<currency>`, the
provider naming which PSP holds a balance. Names are stored in every transfer: never rename one."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class AccountName(StrEnum):
    REFUND_CONTRA_REVENUE = "refund_contra_revenue"  # goods given back
    SALES_TAX_PAYABLE = "sales_tax_payable"  # tax refunded lowers what is owed to the tax office
    SHIPPING_CONTRA_REVENUE = "shipping_contra_revenue"
    REFUND_EXPENSE = "refund_expense"  # goodwill: more than the lines, tax and shipping were worth
    CUSTOMER_REFUNDS_PAYABLE = "customer_refunds_payable"  # owed to the customer until the PSP pays
    PSP_RECEIVABLE = "psp_receivable"  # our balance at a PSP, which pays the refund
    FX_CONVERSION = "fx_conversion"  # where one currency turns into another, per currency
    FX_DIFFERENCE = "fx_difference"  # gains and losses against the capture's rate
    PSP_FEES = "psp_fees"  # what a PSP charges for processing, per PSP; a fee it gives back credits it


def account(merchant: str, name: AccountName, currency: str, provider: str | None = None) -> str:
    return ":".join([merchant, name.value, *([provider] if provider else []), currency])


def paid_out(balances: Mapping[tuple[str, str], int], provider: str, currency: str) -> int:
    """What a PSP paid the customer for one refund, from that refund's posted balances (debit minus
    credit per account and currency): credited out of our balance at `provider` in the refund's
    currency, or (paid from a balance in another currency) out of `fx_conversion` in it. A fee the
    PSP gave back came into that balance from `psp_fees`: counted with it, the payout is whole."""
    paid_from = (
        f":{AccountName.PSP_RECEIVABLE.value}:{provider}:",
        f":{AccountName.FX_CONVERSION.value}:",
        f":{AccountName.PSP_FEES.value}:{provider}:",
    )
    return -sum(
        value
        for (name, in_currency), value in balances.items()
        if in_currency == currency and any(part in name for part in paid_from)
    )
