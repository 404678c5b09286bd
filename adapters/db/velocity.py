"""Refund velocity from our own database: how often this customer and this payment asked before."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlmodel import col

from adapters.db.dialect import insert_ignoring_conflicts
from adapters.db.models import RefundRequestRow
from domain.contracts import RiskSignals
from domain.requests import RefundRequest


def record_and_measure(
    session: Session, request: RefundRequest, now: datetime, card_fingerprint: str | None = None
) -> RiskSignals:
    """Remember this request (once), then count the earlier ones that make it riskier."""
    insert_ignoring_conflicts(
        session,
        RefundRequestRow,
        [
            {
                "request_id": request.request_id,
                "provider": request.provider.value,
                "payment_reference": request.payment_reference,
                "customer_id": request.customer_id,
                "order_id": request.order_id,
                "card_fingerprint": card_fingerprint,
                "requested_at": now,
            }
        ],
    )
    others = col(RefundRequestRow.request_id) != request.request_id
    payment_requests = session.execute(
        select(func.count()).where(
            others,
            col(RefundRequestRow.provider) == request.provider.value,
            col(RefundRequestRow.payment_reference) == request.payment_reference,
        )
    ).scalar_one()
    cards = 0
    if card_fingerprint is not None:
        # other payments with the same card: refunds of this payment already count above
        same_card = col(RefundRequestRow.card_fingerprint) == card_fingerprint
        other_payment = col(RefundRequestRow.payment_reference) != request.payment_reference
        recent_card = col(RefundRequestRow.requested_at) >= now - timedelta(days=30)
        cards = session.execute(
            select(func.count()).where(others, same_card, other_payment, recent_card)
        ).scalar_one()
    if request.customer_id is None:
        return RiskSignals(payment_requests=payment_requests, card_requests_30d=cards)
    customer = col(RefundRequestRow.customer_id) == request.customer_id
    recent = session.execute(
        select(func.count()).where(
            others, customer, col(RefundRequestRow.requested_at) >= now - timedelta(days=30)
        )
    ).scalar_one()
    orders = session.execute(
        select(func.count(func.distinct(RefundRequestRow.order_id))).where(
            customer,
            col(RefundRequestRow.order_id) != request.order_id,
            col(RefundRequestRow.requested_at) >= now - timedelta(days=90),
        )
    ).scalar_one()
    return RiskSignals(
        customer_requests_30d=recent,
        customer_orders_90d=orders,
        payment_requests=payment_requests,
        card_requests_30d=cards,
    )
