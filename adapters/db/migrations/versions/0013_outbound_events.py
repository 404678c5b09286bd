"""Events to the merchant's own systems: its endpoints (each served by one relay at a time, under a
lease), the events, what each endpoint is owed (a refund's earliest still owed found by an index),
and every attempt to deliver.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "event_endpoints",
        sa.Column("endpoint_id", sa.String(length=40), nullable=False),
        sa.Column("merchant", sa.String(length=64), nullable=True),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("event_types", sa.String(length=1000), nullable=False),
        sa.Column("secret", sa.String(length=100), nullable=False),
        sa.Column("previous_secret", sa.String(length=100), nullable=True),
        _ts("previous_secret_until", nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.String(length=500), nullable=True),
        _ts("created_at"),
        sa.Column("relay_by", sa.String(length=40), nullable=True),
        _ts("relay_until", nullable=True),
        sa.PrimaryKeyConstraint("endpoint_id"),
    )
    op.create_index("ix_event_endpoints_merchant", "event_endpoints", ["merchant"])
    op.create_table(
        "outbound_events",
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=40), nullable=False),
        sa.Column("merchant", sa.String(length=64), nullable=True),
        sa.Column("refund", sa.String(length=128), nullable=False),
        sa.Column("event_type", sa.String(length=40), nullable=False),
        sa.Column("payload", sa.String(), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("event_id"),
    )
    op.create_index("ix_outbound_events_merchant", "outbound_events", ["merchant"])
    op.create_index("ix_outbound_events_refund", "outbound_events", ["refund"])
    op.create_table(
        "event_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_seq", sa.Integer(), nullable=False),
        sa.Column("endpoint_id", sa.String(length=40), nullable=False),
        sa.Column("refund", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _ts("first_failure_at", nullable=True),
        _ts("next_attempt_at"),
        _ts("delivered_at", nullable=True),
        sa.ForeignKeyConstraint(["event_seq"], ["outbound_events.seq"]),
        sa.ForeignKeyConstraint(["endpoint_id"], ["event_endpoints.endpoint_id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_seq", "endpoint_id", name="uq_event_deliveries_event_endpoint"),
    )
    op.create_index("ix_event_deliveries_due", "event_deliveries", ["state", "next_attempt_at"])
    op.create_index(
        "ix_event_deliveries_refund_chain",
        "event_deliveries",
        ["endpoint_id", "refund", "state", "event_seq"],
    )
    op.create_index("ix_event_deliveries_event_seq", "event_deliveries", ["event_seq"])
    op.create_index("ix_event_deliveries_endpoint_id", "event_deliveries", ["endpoint_id"])
    op.create_table(
        "event_delivery_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=False),
        _ts("attempted_at"),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("answer", sa.String(length=500), nullable=False),
        sa.ForeignKeyConstraint(["delivery_id"], ["event_deliveries.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_event_delivery_attempts_delivery_id", "event_delivery_attempts", ["delivery_id"])


def downgrade() -> None:
    op.drop_table("event_delivery_attempts")
    op.drop_table("event_deliveries")
    op.drop_table("outbound_events")
    op.drop_table("event_endpoints")
