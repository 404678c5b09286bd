"""API clients (software asking for refunds on a merchant's behalf, its key hashed), their daily
budgets per currency, and the budget each of their refunds reserved.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_clients",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("merchant", sa.String(length=64), nullable=False),
        sa.Column("key_digest", sa.String(length=64), nullable=False),
        sa.Column("reasons", sa.String(length=1000), nullable=False),
        sa.Column("max_per_refund", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name"),
        sa.UniqueConstraint("key_digest"),
    )
    op.create_table(
        "api_client_budgets",
        sa.Column("client", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("daily_limit", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("daily_limit > 0", name="ck_api_client_budgets_limit_positive"),
        sa.ForeignKeyConstraint(["client"], ["api_clients.name"]),
        sa.PrimaryKeyConstraint("client", "currency"),
    )
    op.create_table(
        "client_budget_reservations",
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reserved_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("amount > 0", name="ck_client_budget_reservations_amount_positive"),
        sa.ForeignKeyConstraint(["client"], ["api_clients.name"]),
        sa.PrimaryKeyConstraint("request_id"),
    )
    op.create_index(
        "ix_client_budget_reservations_window",
        "client_budget_reservations",
        ["client", "currency", "reserved_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_client_budget_reservations_window", table_name="client_budget_reservations")
    op.drop_table("client_budget_reservations")
    op.drop_table("api_client_budgets")
    op.drop_table("api_clients")
