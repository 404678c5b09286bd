"""The currencies a request may use, and their exponents, are ISO 4217's (the `iso4217` package)."""

from __future__ import annotations

from iso4217 import Currency

from domain.currencies import REFUNDABLE_CURRENCIES
from domain.money import currency_exponent


def test_refundable_currencies_are_iso_4217_codes_with_minor_units() -> None:
    assert {c.code for c in Currency if c.exponent is not None} == REFUNDABLE_CURRENCIES


def test_every_exponent_is_iso_4217s() -> None:
    assert {c.code: c.exponent for c in Currency if c.exponent is not None} == {
        code: currency_exponent(code) for code in REFUNDABLE_CURRENCIES
    }
