"""The database-backed inventory: returned sellable units added to stock, once per receipt and SKU."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlmodel import col

from adapters.db.dialect import insert_ignoring_conflicts, insert_new
from adapters.db.models import RestockRow, StockRow, utcnow
from domain.returns import GoodsReceipt


def restock(session: Session, merchant: str, request_id: str, receipt: GoodsReceipt) -> dict[str, int]:
    """Add the receipt's sellable units to stock; a receipt restocked before adds nothing again.
    Returns the receipt's restocked units per SKU (the same answer on every retry)."""
    sellable: dict[str, int] = {}
    for line in receipt.lines:
        if line.sellable:
            sellable[line.sku] = sellable.get(line.sku, 0) + line.sellable
    for sku, units in sorted(sellable.items()):
        row = {"request_id": request_id, "receipt_id": receipt.receipt_id, "sku": sku, "units": units}
        if not insert_new(session, RestockRow, [row]):
            continue  # this receipt's SKU was restocked already
        insert_ignoring_conflicts(session, StockRow, [{"merchant": merchant, "sku": sku, "on_hand": 0}])
        stock = session.get(StockRow, (merchant, sku), with_for_update=True)
        assert stock is not None
        stock.on_hand += units
        stock.updated_at = utcnow()
    done = select(RestockRow).where(
        col(RestockRow.request_id) == request_id, col(RestockRow.receipt_id) == receipt.receipt_id
    )
    return {row.sku: row.units for row in session.execute(done).scalars()}


def on_hand(session: Session, merchant: str, sku: str) -> int:
    stock = session.get(StockRow, (merchant, sku))
    return stock.on_hand if stock is not None else 0
