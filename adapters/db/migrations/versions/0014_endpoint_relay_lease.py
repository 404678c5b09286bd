"""Event endpoints are served by one relay at a time (a lease on the endpoint, renewed while it
serves), and a refund's earliest event still owed is found by an index.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("event_endpoints") as batch:
        batch.add_column(sa.Column("relay_by", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("relay_until", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_event_deliveries_refund_chain",
        "event_deliveries",
        ["endpoint_id", "refund", "state", "event_seq"],
    )


def downgrade() -> None:
    op.drop_index("ix_event_deliveries_refund_chain", table_name="event_deliveries")
    with op.batch_alter_table("event_endpoints") as batch:
        batch.drop_column("relay_until")
        batch.drop_column("relay_by")
