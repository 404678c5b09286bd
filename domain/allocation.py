"""How a refund's total splits over the returned lines, their tax and shipping: exact, in minor units.

The parts always sum to the total. A total below what the lines, tax and shipping are worth is shared
pro rata by the largest-remainder method (no part gets more than it is worth, rounding never loses or
invents a minor unit, and the split is deterministic); a total above it keeps every part whole and
books the rest as `unallocated` (goodwill, or a refund that names no lines).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from domain.money import Money
from domain.requests import RefundItem


class ShippingPolicy(StrEnum):
    ALWAYS = "always"
    NEVER = "never"
    FULL_RETURN = "full_return"  # only when the refund gives back everything captured


class AllocatedLine(BaseModel):
    model_config = ConfigDict(frozen=True)

    sku: str
    quantity: int
    goods: int
    tax: int


class Allocation(BaseModel):
    model_config = ConfigDict(frozen=True)

    currency: str
    lines: list[AllocatedLine] = []
    shipping: int = 0
    unallocated: int = 0

    @property
    def goods(self) -> int:
        return sum(line.goods for line in self.lines)

    @property
    def tax(self) -> int:
        return sum(line.tax for line in self.lines)

    @property
    def total(self) -> int:
        return self.goods + self.tax + self.shipping + self.unallocated


def shipping_refunded(shipping_amount: int, policy: ShippingPolicy, full_return: bool) -> int:
    match policy:
        case ShippingPolicy.ALWAYS:
            return shipping_amount
        case ShippingPolicy.NEVER:
            return 0
        case ShippingPolicy.FULL_RETURN:
            return shipping_amount if full_return else 0


def largest_remainder(total: int, weights: Sequence[int]) -> list[int]:
    """`total` split in proportion to `weights` (non-negative, total at most their sum) into integers
    that sum exactly to `total`; leftover units go to the largest fractional parts, earliest first."""
    weight_sum = sum(weights)
    if total < 0 or any(w < 0 for w in weights) or total > weight_sum:
        raise ValueError("need 0 <= total <= sum(weights) and non-negative weights")
    if weight_sum == 0:
        return [0] * len(weights)
    shares = [total * w // weight_sum for w in weights]
    remainders = [total * w % weight_sum for w in weights]
    leftover = total - sum(shares)
    by_remainder = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
    for index in by_remainder[:leftover]:
        shares[index] += 1
    return shares


def allocate(
    total: Money,
    items: Sequence[RefundItem],
    shipping_amount: int,
    policy: ShippingPolicy,
    *,
    full_return: bool,
) -> Allocation:
    """Split `total` over the lines' goods and tax and the refundable shipping."""
    shipping = shipping_refunded(shipping_amount, policy, full_return)
    # goods and tax of each line, then shipping: the order the leftover units are tie-broken in
    weights = [part for item in items for part in (item.quantity * item.unit_amount, item.tax_amount)]
    weights.append(shipping)
    worth = sum(weights)
    if total.value >= worth:
        shares, unallocated = weights, total.value - worth
    else:
        shares, unallocated = largest_remainder(total.value, weights), 0
    lines = [
        AllocatedLine(sku=item.sku, quantity=item.quantity, goods=shares[2 * i], tax=shares[2 * i + 1])
        for i, item in enumerate(items)
    ]
    return Allocation(currency=total.currency, lines=lines, shipping=shares[-1], unallocated=unallocated)
