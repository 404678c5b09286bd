"""The public refund request body (the README's contract), validated strictly."""

from __future__ import annotations

import hashlib
import re
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

from domain.currencies import MAX_MINOR_UNITS, REFUNDABLE_CURRENCIES
from domain.money import Money
from domain.status import Provider

REQUEST_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$"  # what a merchant may send
# What a refund is kept under: the request id, marked with its merchant unless the default one
# (`domain.naming.refund_id`); the mark is ours to add, never the merchant's to send.
REFUND_ID_PATTERN = r"^(?:[a-z0-9][a-z0-9-]{0,63}~)?[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$"
REFUND_ID_LENGTH = 128  # a merchant other than the default has its id's length less for the mark
AS_SENT = "as sent by a merchant"  # validation context: a request as it comes in over HTTP


def holds_nul(value: object) -> bool:
    """Whether text anywhere in `value` holds a NUL, which PostgreSQL cannot store: a refund taken with
    one would fail every write of its validation, retried for ever."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(holds_nul(key) or holds_nul(item) for key, item in value.items())
    if isinstance(value, list | tuple):
        return any(holds_nul(item) for item in value)
    return False


# A JSON integer of minor units: never a float (25.0), a string ("2500") or a boolean (true).
MinorUnits = Annotated[StrictInt, Field(ge=0, le=MAX_MINOR_UNITS)]

# Metadata is the merchant's, echoed in the audit and to the PSP: bounded like the PSPs bound theirs.
METADATA_KEYS, METADATA_KEY_LENGTH, METADATA_VALUE_LENGTH = 50, 40, 500


class RequestedAmount(Money):
    """The amount a request asks for: at least one minor unit, in a currency money can be refunded in."""

    value: StrictInt = Field(ge=1, le=MAX_MINOR_UNITS, description="Integer amount in minor units.")

    @field_validator("currency")
    @classmethod
    def _known(cls, currency: str) -> str:
        code = currency.upper()
        if code not in REFUNDABLE_CURRENCIES:
            raise ValueError(f"{currency!r} is not an ISO 4217 currency money can be refunded in")
        return code


class RefundItem(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sku: str = Field(min_length=1, max_length=128)
    quantity: StrictInt = Field(gt=0, le=1_000_000)
    unit_amount: MinorUnits = Field(description="Minor units per unit, before tax.")
    tax_amount: MinorUnits = Field(default=0, description="Minor units of tax for the whole line.")
    restock: bool = False


class RefundRequest(BaseModel):
    """A merchant's signed request to give a customer money back."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    request_id: str = Field(
        pattern=REFUND_ID_PATTERN,
        max_length=REFUND_ID_LENGTH,
        description="The merchant's idempotency key for this refund.",
    )
    provider: Provider
    payment_reference: str = Field(min_length=1, max_length=128)
    amount: RequestedAmount | None = Field(
        default=None, description="Omitted: everything still refundable on the payment."
    )
    reason_code: str = Field(min_length=1, max_length=64)
    order_id: str = Field(min_length=1, max_length=128)
    customer_id: str | None = Field(default=None, max_length=128)
    items: list[RefundItem] | None = Field(default=None, max_length=500)
    shipping_amount: MinorUnits | None = None
    metadata: dict[str, str] | None = Field(default=None, max_length=METADATA_KEYS)

    @field_validator("request_id")
    @classmethod
    def _merchants_own(cls, request_id: str, info: ValidationInfo) -> str:
        """A merchant sends its own id; only we mark it with a merchant."""
        if info.context == AS_SENT and not re.fullmatch(REQUEST_ID_PATTERN, request_id):
            raise ValueError(f"a request id matches {REQUEST_ID_PATTERN}")
        return request_id

    @model_validator(mode="after")
    def _storable(self, info: ValidationInfo) -> RefundRequest:
        if info.context == AS_SENT and holds_nul(self.model_dump()):
            raise ValueError("text may not contain NUL (\\u0000)")
        return self

    @field_validator("amount", mode="before")
    @classmethod
    def _as_requested(cls, amount: object) -> object:
        """Plain `Money` (code building a request) is checked as a requested amount too."""
        if isinstance(amount, Money) and not isinstance(amount, RequestedAmount):
            return amount.model_dump()
        return amount

    @field_validator("metadata")
    @classmethod
    def _bounded(cls, metadata: dict[str, str] | None) -> dict[str, str] | None:
        for key, value in (metadata or {}).items():
            if not 0 < len(key) <= METADATA_KEY_LENGTH or len(value) > METADATA_VALUE_LENGTH:
                raise ValueError(
                    f"metadata keys are 1-{METADATA_KEY_LENGTH} characters, values at most "
                    f"{METADATA_VALUE_LENGTH}"
                )
        return metadata

    def digest(self) -> str:
        """SHA-256 of the canonical form: the same request re-serialised (key order, spacing)
        digests the same; any changed value does not."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()

    def digest_for(self, merchant_id: str | None) -> str:
        """The digest a duplicate is compared by: another merchant's same body is another request."""
        return self.digest() if merchant_id is None else f"{merchant_id}:{self.digest()}"
