"""An API client's key can be rotated: the previous key's digest stays valid until its deadline, so
a client can be given the new key before the old one stops working. A settled refund keeps who asked
for it (an API client, a PSP's warning), so a client reads its own refund after Temporal forgets it.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("previous_key_digest", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("previous_key_until", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_unique_constraint("uq_api_clients_previous_key_digest", ["previous_key_digest"])
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("requested_by", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.drop_column("requested_by")
    with op.batch_alter_table("api_clients", schema=None) as batch_op:
        batch_op.drop_constraint("uq_api_clients_previous_key_digest", type_="unique")
        batch_op.drop_column("previous_key_until")
        batch_op.drop_column("previous_key_digest")
