"""The public refund request body (the README's contract), validated strictly."""

from __future__ import annotations

import hashlib

from pydantic import BaseModel, ConfigDict, Field

from domain.money import Money
from domain.status import Provider

_ID = r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$"


class RefundItem(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sku: str = Field(min_length=1, max_length=128)
    quantity: int = Field(gt=0, le=1_000_000)
    unit_amount: int = Field(ge=0, description="Minor units per unit, before tax.")
    tax_amount: int = Field(default=0, ge=0, description="Minor units of tax for the whole line.")
    restock: bool = False


class RefundRequest(BaseModel):
    """A merchant's signed request to give a customer money back."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    request_id: str = Field(pattern=_ID, description="The merchant's idempotency key for this refund.")
    provider: Provider
    payment_reference: str = Field(min_length=1, max_length=128)
    amount: Money | None = Field(
        default=None, description="Omitted: everything still refundable on the payment."
    )
    reason_code: str = Field(min_length=1, max_length=64)
    order_id: str = Field(min_length=1, max_length=128)
    customer_id: str | None = Field(default=None, max_length=128)
    items: list[RefundItem] | None = None
    shipping_amount: int | None = Field(default=None, ge=0)
    metadata: dict[str, str] | None = None

    def digest(self) -> str:
        """SHA-256 of the canonical form: the same request re-serialised (key order, spacing)
        digests the same; any changed value does not."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()

    def digest_for(self, merchant_id: str | None) -> str:
        """The digest a duplicate is compared by: another merchant's same body is another request."""
        return self.digest() if merchant_id is None else f"{merchant_id}:{self.digest()}"
