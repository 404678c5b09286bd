"""`refunds fraud-warnings`: what refunding on early fraud warnings saved each merchant.

Registered on the CLI's `app` (`workers/cli_kit.py`) when `workers/cli.py` imports it; heavy
imports stay inside the command, as in the rest of the CLI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from workers.cli_kit import app, current_settings, fail, print_rows, read_database

if TYPE_CHECKING:
    from domain.warning_savings import Savings

COLUMNS = (
    "merchant",
    "currency",
    "refunds on warnings",
    "refunded",
    "fee per chargeback",
    "chargebacks would have cost",
    "saved",
)


@app.command("fraud-warnings")
def fraud_warnings(
    merchant: Annotated[
        str | None, typer.Option(help="Only this merchant's (default: every merchant's)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Refunds made on early fraud warnings, per merchant and currency: how many succeeded, what they
    refunded, what the same payments would have cost as chargebacks (amount plus the policy's
    `chargeback_fee` each) and what was saved (the fees). A refund the PSP failed later does not count.

    Example: refunds fraud-warnings --merchant globex --json"""
    from adapters.db import refunds
    from domain.policy_file import PolicyError
    from domain.warning_savings import savings

    settings = current_settings()
    try:
        policies = {
            merchant_id: settings.for_merchant(profile).policy()
            for merchant_id, profile in settings.merchant_profiles().items()
        }
    except PolicyError as err:
        fail("invalid_policy", err, 2)
    if merchant is not None and merchant not in policies:
        fail("not_found", f"no merchant {merchant!r} is configured here", 2)
    db = read_database(settings)
    try:
        with db.transaction() as session:
            made = refunds.warning_refunds(session, settings.merchant_id, merchant)
    finally:
        db.dispose()
    fees = {
        merchant_id: policy.early_fraud_warnings.chargeback_fees for merchant_id, policy in policies.items()
    }
    rows = [_row(line, as_json) for line in savings(made, fees)]
    print_rows(COLUMNS, rows, "no refunds made on early fraud warnings yet", as_json)


def _row(line: Savings, as_json: bool) -> tuple[object, ...]:
    """Amounts in the table as exact decimal strings in major units; in JSON as every list gives
    money, `{"value": minor units, "currency"}`. Where the policy sets no fee for the currency, what
    depends on it is null in JSON and said so in the table."""
    from domain.money import format_minor

    def money(value: int | None, missing: str = "-") -> object:
        if value is None:
            return None if as_json else missing
        if as_json:
            return {"value": value, "currency": line.currency}
        return format_minor(value, line.currency)

    return (
        line.merchant_id,
        line.currency,
        line.refunds,
        money(line.refunded),
        money(line.fee, "not set"),
        money(line.chargebacks_would_have_cost),
        money(line.saved),
    )
