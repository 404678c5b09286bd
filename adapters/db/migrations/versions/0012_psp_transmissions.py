"""PSP transmissions taken, with a digest of each one's body (a PayPal transmission id is taken with
one body only: its signature covers the body's crc32 alone).

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "psp_transmissions",
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("account", sa.String(length=200), nullable=False),
        sa.Column("transmission_key", sa.String(length=200), nullable=False),
        sa.Column("body_sha256", sa.String(length=64), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("provider", "account", "transmission_key"),
    )
    op.create_index("ix_psp_transmissions_received_at", "psp_transmissions", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_psp_transmissions_received_at", table_name="psp_transmissions")
    op.drop_table("psp_transmissions")
