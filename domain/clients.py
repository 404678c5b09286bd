"""API clients: software (a support agent, a help desk) that asks for refunds on a merchant's behalf.

A client proves itself with a bearer key, kept hashed at rest (sha256, like reviewer tokens). It may
ask only for the reasons it was given; a refund over its maximum per refund in that currency, of
unknown size (the amount omitted: everything refundable) or over its rolling 24 hour budget in that
currency is still started, but held for a human. Maxima and budgets are per currency, in its minor
units: one number across currencies would be 50 euros and 50 yen at once. Pure code: the database
keeps the clients and their reservations.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal, InvalidOperation

from domain.contracts import RiskReason
from domain.currencies import MAX_MINOR_UNITS, REFUNDABLE_CURRENCIES
from domain.money import Money, currency_exponent, format_minor

KEY_PREFIX = "rfc_"
BUDGET_WINDOW = timedelta(hours=24)  # the daily budget is rolling: the last 24 hours
NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
REASON_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
LIMIT_CODE = "client_limit"
BUDGET_CODE = "client_budget"
HELD_AT_INTAKE = frozenset({LIMIT_CODE, BUDGET_CODE})  # shown in the review queue at 0 points
MAX_EXPONENT = max(currency_exponent(currency) for currency in REFUNDABLE_CURRENCIES)  # CLF's 4


class ClientError(ValueError):
    """A client's configuration that cannot be: the message says what and how."""


def new_key() -> str:
    """A fresh key: shown once, never stored."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def requested_by(name: str) -> str:
    """How a client shows on its refunds (`RefundWorkflowInput.requested_by`)."""
    return f"client:{name}"


def check_name(name: str) -> str:
    if not re.fullmatch(NAME_PATTERN, name):
        raise ClientError(f"{name!r} is not a client name: lower case letters, digits, _ . - (64 at most)")
    return name


def parse_reasons(text: str) -> tuple[str, ...]:
    reasons = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if not reasons:
        raise ClientError("a client needs at least one reason code it may ask for")
    bad = [reason for reason in reasons if not re.fullmatch(REASON_PATTERN, reason)]
    if bad:
        raise ClientError(f"not a reason code: {', '.join(bad)}")
    return reasons


def parse_major(text: str) -> Decimal:
    """A positive decimal amount in major units ("50.00"), never a float: no larger than any refund
    may be, no finer than any currency's minor unit."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation as err:
        raise ClientError(f"{text!r} is not an amount like 50.00") from err
    if not value.is_finite() or value <= 0:
        raise ClientError(f"{text!r} is not a positive amount")
    if value > MAX_MINOR_UNITS:
        raise ClientError(f"{text!r} is larger than any refund may be")
    if int(value.as_tuple().exponent) < -MAX_EXPONENT:
        raise ClientError(f"{text!r} has more decimals than any currency has ({MAX_EXPONENT})")
    return value


def parse_budget(text: str) -> Money:
    """`EUR:200.00`: an amount in minor units of its currency (a daily budget, a maximum)."""
    currency, _, amount = text.partition(":")
    currency = currency.strip().upper()
    if currency not in REFUNDABLE_CURRENCIES:
        raise ClientError(f"{text!r} is not CURRENCY:AMOUNT with an ISO 4217 currency")
    return _in_minor_units(parse_major(amount), currency, text)


def _in_minor_units(major: Decimal, currency: str, text: str) -> Money:
    minor = major.scaleb(currency_exponent(currency))
    if minor != minor.to_integral_value():
        raise ClientError(f"{text!r} has more decimals than {currency} has")
    if minor > MAX_MINOR_UNITS:
        raise ClientError(f"{text!r} is larger than any refund may be ({MAX_MINOR_UNITS} minor units)")
    return Money(value=int(minor), currency=currency)


def parse_maxima(texts: list[str], budgets: tuple[Money, ...]) -> tuple[Money, ...]:
    """The maximum per refund in each currency of the budgets: `EUR:50.00` for one currency, or a
    bare `50.00` for every currency not named (as an amount of each: 50 euros, 50 yen). Every
    budget's currency needs one; a currency without a budget has every refund held anyway."""
    named = [parse_budget(text) for text in texts if ":" in text]
    bare = [text for text in texts if ":" not in text]
    if len(bare) > 1:
        raise ClientError("one maximum for every currency at most; name the others as CURRENCY:AMOUNT")
    currencies = [maximum.currency for maximum in named]
    if len(set(currencies)) != len(currencies):
        raise ClientError("one maximum per refund per currency")
    budgeted = [budget.currency for budget in budgets]
    stray = sorted(set(currencies) - set(budgeted))
    if stray:
        raise ClientError(
            f"no daily budget in {', '.join(stray)}: every refund there waits for a human anyway"
        )
    every = parse_major(bare[0]) if bare else None
    maxima = []
    for currency in budgeted:
        given = next((maximum for maximum in named if maximum.currency == currency), None)
        if given is None:
            if every is None:
                raise ClientError(
                    f"no maximum per refund in {currency}: give {currency}:AMOUNT or one AMOUNT"
                )
            given = _in_minor_units(every, currency, f"{bare[0]} in {currency}")
        maxima.append(given)
    return tuple(maxima)


def parse_budgets(texts: list[str]) -> tuple[Money, ...]:
    budgets = [parse_budget(text) for text in texts]
    currencies = [budget.currency for budget in budgets]
    if len(set(currencies)) != len(currencies):
        raise ClientError("one daily budget per currency")
    return tuple(budgets)


@dataclass(frozen=True)
class Client:
    name: str
    merchant_id: str
    reasons: tuple[str, ...]
    maxima: tuple[Money, ...]  # the maximum per refund, per currency
    budgets: tuple[Money, ...]  # per currency, over the rolling window

    def budget(self, currency: str) -> Money | None:
        return next((budget for budget in self.budgets if budget.currency == currency), None)

    def maximum(self, currency: str) -> Money | None:
        return next((maximum for maximum in self.maxima if maximum.currency == currency), None)

    def allows(self, reason_code: str) -> bool:
        return reason_code in self.reasons

    def over_max(self, amount: Money | None) -> RiskReason | None:
        """Why a refund of `amount` is over the client's own maximum; None when it is within.
        An omitted amount (everything refundable) has no size at intake: it is held."""
        if amount is None:
            return RiskReason(
                code=LIMIT_CODE,
                points=0,
                detail=f"amount omitted (everything refundable): over {self.name}'s maximum per refund",
            )
        maximum = self.maximum(amount.currency)
        if maximum is None:
            missing = f"{self.name} has no maximum per refund in {amount.currency}"
            return RiskReason(code=LIMIT_CODE, points=0, detail=missing)
        if amount.value > maximum.value:
            shown = format_minor(amount.value, amount.currency)
            return RiskReason(
                code=LIMIT_CODE,
                points=0,
                detail=f"{shown} {amount.currency} is over {self.name}'s maximum of "
                f"{format_minor(maximum.value, maximum.currency)} {maximum.currency}",
            )
        return None


@dataclass(frozen=True)
class BudgetStanding:
    """One currency of a client's daily budget, as it stands: what is reserved in the window and
    what is left for refunds that go ahead without a human."""

    budget: Money
    reserved: int  # minor units reserved in the rolling window

    @property
    def left(self) -> Money:
        return Money(value=max(self.budget.value - self.reserved, 0), currency=self.budget.currency)


def over_budget(client: Client, amount: Money, spent: int) -> RiskReason | None:
    """Why `amount` does not fit what is left of the client's budget after `spent` (minor units
    reserved in the window); None when it fits."""
    budget = client.budget(amount.currency)
    if budget is None:
        return RiskReason(
            code=BUDGET_CODE, points=0, detail=f"{client.name} has no daily budget in {amount.currency}"
        )
    if spent + amount.value > budget.value:
        left = format_minor(max(budget.value - spent, 0), amount.currency)
        return RiskReason(
            code=BUDGET_CODE,
            points=0,
            detail=f"over {client.name}'s daily budget: {left} {amount.currency} left of "
            f"{format_minor(budget.value, amount.currency)}",
        )
    return None
