"""The refunds table: each refund's settled outcome."""

from __future__ import annotations

from sqlalchemy.orm import Session

from adapters.db.models import RefundRow, utcnow
from domain.contracts import FinishInput


def save_outcome(session: Session, outcome: FinishInput) -> None:
    row = session.get(RefundRow, outcome.request_id) or RefundRow(
        request_id=outcome.request_id,
        provider=outcome.provider.value,
        payment_reference=outcome.payment_reference,
        order_id=outcome.order_id,
        status=outcome.status.value,
        method=outcome.method.value,
    )
    row.status = outcome.status.value
    row.method = outcome.method.value
    row.amount = outcome.amount.value if outcome.amount else None
    row.currency = outcome.amount.currency if outcome.amount else None
    row.psp_refund_id = outcome.psp_refund_id
    row.failure_code = outcome.failure_code.value if outcome.failure_code else None
    row.allocation = outcome.allocation.model_dump_json() if outcome.allocation else None
    row.updated_at = utcnow()
    session.add(row)


def get(session: Session, request_id: str) -> RefundRow | None:
    return session.get(RefundRow, request_id)
