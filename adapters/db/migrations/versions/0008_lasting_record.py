"""The database is the lasting record: a settled refund keeps its request's digest (a resent request is
answered from it after Temporal forgets the workflow), and each PSP event signalled is remembered (a
replayed notification never reaches a workflow twice).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("request_digest", sa.String(length=160), nullable=True))
    op.create_table(
        "psp_events",
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("event_key", sa.String(length=200), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("provider", "account", "event_key"),
    )


def downgrade() -> None:
    op.drop_table("psp_events")
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.drop_column("request_digest")
