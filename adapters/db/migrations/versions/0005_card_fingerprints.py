"""Refund requests remember the card's fingerprint, for velocity per card.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("refund_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("card_fingerprint", sa.String(length=128), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_refund_requests_card_fingerprint"), ["card_fingerprint"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("refund_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_refund_requests_card_fingerprint"))
        batch_op.drop_column("card_fingerprint")
