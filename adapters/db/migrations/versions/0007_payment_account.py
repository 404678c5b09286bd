"""The payment book remembers each payment's PSP merchant account, so one merchant never reads
another's payments.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("psp_payments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("account", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("psp_payments", schema=None) as batch_op:
        batch_op.drop_column("account")
