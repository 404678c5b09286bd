"""Money as integer minor units plus an ISO 4217 currency; never a float."""

from __future__ import annotations

import re
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# ISO 4217 exponents that differ from the common 2. PSP-specific deviations live in each adapter.
_ISO_EXPONENTS: dict[str, int] = {
    **dict.fromkeys(
        [
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "UYI",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ],
        0,
    ),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
    "CLF": 4,
    "UYW": 4,
}


def currency_exponent(currency: str) -> int:
    """Number of minor-unit digits of a currency (ISO 4217 baseline)."""
    return _ISO_EXPONENTS.get(currency.upper(), 2)


def major_to_minor(major_units: int, currency: str) -> int:
    """Whole major units (e.g. a policy threshold of 1,000 EUR) in minor units."""
    return major_units * int(10 ** currency_exponent(currency))


# at most 23 digits: within Decimal's 28 of precision, so scaling to minor units is exact
_MAJOR_TEXT = re.compile(r"[0-9]{1,15}(?:\.[0-9]{1,8})?")


def parse_major_text(text: str, currency: str) -> int:
    """An exact decimal string in major units ("15.00") in minor units of `currency` (1500 EUR).
    Digits and one point only: no sign, exponent or float's rounding to hide a wrong amount, and
    never more decimals than the currency has ("15.001" EUR is an error, not 15.00)."""
    if not _MAJOR_TEXT.fullmatch(text):
        raise ValueError(f"{text!r} is not an amount like 15.00")
    minor = Decimal(text).scaleb(currency_exponent(currency))
    if minor != minor.to_integral_value():
        raise ValueError(f"{text!r} has more decimals than {currency.upper()} has")
    return int(minor)


def format_minor(value: int, currency: str) -> str:
    """Exact decimal string in major units: 1250 EUR -> "12.50", 500 JPY -> "500"."""
    exponent = currency_exponent(currency)
    return f"{Decimal(value).scaleb(-exponent):.{exponent}f}"


class Money(BaseModel):
    """An amount in the currency's smallest unit."""

    model_config = ConfigDict(frozen=True)

    value: int = Field(ge=0, description="Integer amount in minor units (cents for EUR).")
    currency: str = Field(min_length=3, max_length=3, description="ISO 4217 code, e.g. EUR.")

    @field_validator("currency")
    @classmethod
    def _upper(cls, currency: str) -> str:
        if not currency.isalpha():
            raise ValueError("currency must be a three-letter ISO 4217 code")
        return currency.upper()

    def __str__(self) -> str:
        return f"{format_minor(self.value, self.currency)} {self.currency}"
