"""Allocation of a partial refund over lines, tax and shipping: exact to the minor unit, always."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.allocation import ShippingPolicy, allocate, largest_remainder, shipping_refunded
from domain.money import Money
from domain.requests import RefundItem

items_strategy = st.lists(
    st.builds(
        RefundItem,
        sku=st.text(alphabet="ABCDEFGH0123456789", min_size=1, max_size=8),
        quantity=st.integers(min_value=1, max_value=50),
        unit_amount=st.integers(min_value=0, max_value=500_000),
        tax_amount=st.integers(min_value=0, max_value=100_000),
    ),
    max_size=12,
)


@given(
    items=items_strategy,
    shipping=st.integers(min_value=0, max_value=10_000),
    policy=st.sampled_from(ShippingPolicy),
    full_return=st.booleans(),
    data=st.data(),
)
def test_parts_sum_exactly_to_the_total_and_none_exceeds_its_worth(
    items: list[RefundItem],
    shipping: int,
    policy: ShippingPolicy,
    full_return: bool,
    data: st.DataObject,
) -> None:
    worth = sum(i.quantity * i.unit_amount + i.tax_amount for i in items)
    worth += shipping_refunded(shipping, policy, full_return)
    total = data.draw(st.integers(min_value=0, max_value=worth + 50_000), label="total")

    allocation = allocate(
        Money(value=total, currency="EUR"), items, shipping, policy, full_return=full_return
    )

    assert allocation.total == total
    assert [(line.sku, line.quantity) for line in allocation.lines] == [(i.sku, i.quantity) for i in items]
    for line, item in zip(allocation.lines, items, strict=True):
        assert 0 <= line.goods <= item.quantity * item.unit_amount
        assert 0 <= line.tax <= item.tax_amount
    assert 0 <= allocation.shipping <= shipping_refunded(shipping, policy, full_return)
    assert allocation.unallocated == max(total - worth, 0)


@given(
    weights=st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=20),
    data=st.data(),
)
def test_largest_remainder_is_proportional_within_one_unit(weights: list[int], data: st.DataObject) -> None:
    total = data.draw(st.integers(min_value=0, max_value=sum(weights)), label="total")
    shares = largest_remainder(total, weights)
    assert sum(shares) == total
    if sum(weights):
        for share, weight in zip(shares, weights, strict=True):
            exact = Fraction(total * weight, sum(weights))
            assert exact - 1 < share < exact + 1
            assert share <= weight


def test_a_worked_example() -> None:
    """Two shirts (20.00 each, 7.60 tax), a cap (15.00, 2.85 tax), shipping 4.90; 30.00 of 70.35 back.

    Exact shares 1705.76, 324.09, 639.66, 121.54, 208.96 floor to 2997; the three leftover cents go to
    the largest fractions: shipping (.96), the shirts' goods (.76), the cap's goods (.66)."""
    items = [
        RefundItem(sku="SHIRT", quantity=2, unit_amount=2_000, tax_amount=760),
        RefundItem(sku="CAP", quantity=1, unit_amount=1_500, tax_amount=285),
    ]
    allocation = allocate(
        Money(value=3_000, currency="EUR"), items, 490, ShippingPolicy.ALWAYS, full_return=False
    )
    assert [(line.goods, line.tax) for line in allocation.lines] == [(1_706, 324), (640, 121)]
    assert (allocation.shipping, allocation.unallocated, allocation.total) == (209, 0, 3_000)


@pytest.mark.parametrize(
    ("policy", "full_return", "shipping"),
    [
        (ShippingPolicy.ALWAYS, False, 490),
        (ShippingPolicy.NEVER, True, 0),
        (ShippingPolicy.FULL_RETURN, True, 490),
        (ShippingPolicy.FULL_RETURN, False, 0),
    ],
)
def test_shipping_per_policy(policy: ShippingPolicy, full_return: bool, shipping: int) -> None:
    items = [RefundItem(sku="A", quantity=1, unit_amount=1_000, tax_amount=190)]
    allocation = allocate(Money(value=5_000, currency="EUR"), items, 490, policy, full_return=full_return)
    assert allocation.shipping == shipping
    assert allocation.unallocated == 5_000 - 1_190 - shipping


def test_a_refund_without_lines_is_unallocated() -> None:
    allocation = allocate(Money(value=700, currency="JPY"), [], 0, ShippingPolicy.ALWAYS, full_return=True)
    assert (allocation.lines, allocation.unallocated, allocation.total) == ([], 700, 700)


def test_largest_remainder_refuses_impossible_splits() -> None:
    with pytest.raises(ValueError):
        largest_remainder(11, [5, 5])
    with pytest.raises(ValueError):
        largest_remainder(1, [-1, 2])
