"""Returned goods: restocked as each receipt arrives, whatever the refund is doing meanwhile, until
every unit is back or the returns deadline passes."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain.contracts import RefundWorkflowInput, RestockInput
    from domain.returns import (
        GoodsReceipt,
        ReturnsState,
        ReturnsStatus,
        receipt_problem,
        with_receipt,
        with_restock,
    )
    from domain.status import ErrorCode

from workflows.refund.attention import Attention
from workflows.refund.record import RefundRecord
from workflows.refund.steps import Steps


class Returns:
    def __init__(
        self, input: RefundWorkflowInput, record: RefundRecord, steps: Steps, attention: Attention
    ) -> None:
        self._input = input
        self._record = record
        self._steps = steps
        self._attention = attention
        self._receipts: list[GoodsReceipt] = []  # accepted, not yet restocked

    @property
    def expected(self) -> bool:
        return self._record.state.returns.status is ReturnsStatus.AWAITING_GOODS

    async def collect(self) -> None:
        """Restock each receipt's sellable units until every unit is back or the deadline passes."""
        record = self._record
        deadline = workflow.now() + timedelta(seconds=self._input.policy.returns_deadline_seconds)
        while True:
            while self._receipts:
                await self._restock(self._receipts.pop(0))
            if record.state.returns.status is not ReturnsStatus.AWAITING_GOODS:
                return
            try:
                await record.wait(lambda: bool(self._receipts), timeout=deadline - workflow.now())
            except TimeoutError:
                not_received = record.state.returns.model_copy(update={"status": ReturnsStatus.NOT_RECEIVED})
                record.update(returns=not_received)
                record.note("returns_not_received", reason_code="deadline")
                await self._restock(None)  # writes the note
                return

    async def _restock(self, receipt: GoodsReceipt | None) -> None:
        record = self._record
        restock = RestockInput(
            request_id=record.state.request_id,
            merchant_id=self._input.merchant_id,
            payment_reference=record.state.payment_reference,
            receipt=receipt,
            audit=record.drain_audit(),
        )
        result = await self._attention.until_done(lambda: self._steps.restock(restock))
        receipt_id = receipt.receipt_id if receipt is not None else None
        record.update(returns=with_restock(record.state.returns, receipt_id, result.restocked))

    def receive(self, receipt: GoodsReceipt) -> ReturnsState:
        """The warehouse has the goods; a repeated receipt id changes nothing."""
        record = self._record
        if receipt.receipt_id not in record.state.returns.receipts:
            record.update(returns=with_receipt(record.state.returns, receipt))
            self._receipts.append(receipt)
        return record.state.returns

    def check(self, receipt: GoodsReceipt) -> None:
        """A receipt names this refund (or none) and goods it expects back."""
        state = self._record.state
        if receipt.request_id is not None and receipt.request_id != state.request_id:
            raise ApplicationError(
                f"the receipt is for refund {receipt.request_id}", type=ErrorCode.INVALID_REQUEST
            )
        problem = receipt_problem(state.returns, receipt)
        if problem is not None:
            raise ApplicationError(problem, type=ErrorCode.INVALID_REQUEST)
