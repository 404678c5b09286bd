"""Restock returned goods: the stock change and its audit row in one transaction."""

from __future__ import annotations

from temporalio import activity

from activities.audit import activity_event
from activities.errors import refuse_foreign_refund
from activities.merchant import Merchants
from adapters.db import audit, inventory
from adapters.db.engine import Database
from domain.contracts import RestockInput, RestockResult
from domain.naming import Activity


class InventoryActivities:
    def __init__(self, db: Database, merchant_id: str) -> None:
        self._db = db
        self._merchants = Merchants(merchant_id)

    @activity.defn(name=Activity.RESTOCK)
    def restock(self, input: RestockInput) -> RestockResult:
        refuse_foreign_refund(input.request_id)
        receipt = input.receipt
        with self._db.transaction() as session:
            if receipt is None:
                audit.record(session, input.request_id, input.payment_reference, list(input.audit))
                return RestockResult()
            merchant = self._merchants.named(input.merchant_id)
            added = inventory.restock(session, merchant, input.request_id, receipt)
            received = {line.sku: str(line.received) for line in receipt.lines}
            event = activity_event(
                f"inventory:{receipt.receipt_id}",
                "goods_restocked" if added else "goods_received_unsellable",
                actor=f"warehouse:{receipt.received_by}",
                reason_code="restocked" if added else "nothing_sellable",
                detail={
                    "receipt_id": receipt.receipt_id,
                    **{f"received:{sku}": units for sku, units in received.items()},
                    **{f"restocked:{sku}": str(units) for sku, units in added.items()},
                },
            )
            audit.record(session, input.request_id, input.payment_reference, [*input.audit, event])
        return RestockResult(restocked=added)
