"""Inventory: sellable units on hand per SKU, and each receipt's restock (the once-only key).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inventory_restocks",
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("receipt_id", sa.String(length=128), nullable=False),
        sa.Column("sku", sa.String(length=128), nullable=False),
        sa.Column("units", sa.BigInteger(), nullable=False),
        sa.Column("restocked_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("units > 0", name="ck_inventory_restocks_units_positive"),
        sa.PrimaryKeyConstraint("request_id", "receipt_id", "sku"),
    )
    op.create_table(
        "inventory_stock",
        sa.Column("merchant", sa.String(length=64), nullable=False),
        sa.Column("sku", sa.String(length=128), nullable=False),
        sa.Column("on_hand", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("merchant", "sku"),
    )


def downgrade() -> None:
    op.drop_table("inventory_stock")
    op.drop_table("inventory_restocks")
