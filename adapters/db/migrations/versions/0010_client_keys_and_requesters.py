"""An API client's key can be rotated: the previous key's digest stays valid until its deadline, so
a client can be given the new key before the old one stops working. A settled refund keeps who asked
for it (an API client, a PSP's warning), so a client reads its own refund after Temporal forgets it.
A client's maximum per refund is per currency, in minor units, beside its budget there: one decimal
for every currency meant 50 euros and 50 yen at once. An existing maximum becomes that amount in each
of the client's budget currencies, rounded down to the currency's minor unit (never more than before).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal

import sqlalchemy as sa
from alembic import op

from domain.currencies import MAX_MINOR_UNITS
from domain.money import currency_exponent

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # api_clients is never copied (SQLite's way to alter a table): clients' budgets and reservations
    # reference it, and with foreign keys on, dropping the old copy would refuse; columns are added
    # and dropped in place, the uniqueness is an index
    with op.batch_alter_table("api_clients", schema=None, recreate="never") as batch_op:
        batch_op.add_column(sa.Column("previous_key_digest", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("previous_key_until", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_api_clients_previous_key_digest", "api_clients", ["previous_key_digest"], unique=True)
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("requested_by", sa.String(length=200), nullable=True))
    _maxima_per_currency()


def _maxima_per_currency() -> None:
    with op.batch_alter_table("api_client_budgets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("max_per_refund", sa.BigInteger(), nullable=True))
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            "SELECT b.client, b.currency, c.max_per_refund FROM api_client_budgets b "
            "JOIN api_clients c ON c.name = b.client"
        )
    ).all()
    for client, currency, major in rows:
        minor = (Decimal(major).scaleb(currency_exponent(currency))).to_integral_value(ROUND_FLOOR)
        bind.execute(
            sa.text(
                "UPDATE api_client_budgets SET max_per_refund = :maximum "
                "WHERE client = :client AND currency = :currency"
            ),
            # 10^15 major units were allowed, beyond a BIGINT in CLF's 4 decimals: no more than any refund
            {"maximum": min(max(int(minor), 1), MAX_MINOR_UNITS), "client": client, "currency": currency},
        )
    with op.batch_alter_table("api_client_budgets", schema=None) as batch_op:
        batch_op.alter_column("max_per_refund", existing_type=sa.BigInteger(), nullable=False)
        batch_op.create_check_constraint("ck_api_client_budgets_max_positive", "max_per_refund > 0")
    with op.batch_alter_table("api_clients", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("max_per_refund")


def downgrade() -> None:
    with op.batch_alter_table("api_clients", schema=None, recreate="never") as batch_op:
        batch_op.add_column(
            sa.Column("max_per_refund", sa.String(length=32), nullable=False, server_default="0")
        )
    # one decimal again: a client's smallest maximum in major units, never more than it was in any
    # currency (exact for a client of one currency; no budget: 0, as every refund was held anyway)
    bind = op.get_bind()
    maxima: dict[str, Decimal] = {}
    for client, currency, minor in bind.execute(
        sa.text("SELECT client, currency, max_per_refund FROM api_client_budgets")
    ).all():
        major = Decimal(minor).scaleb(-currency_exponent(currency))
        maxima[client] = min(maxima.get(client, major), major)
    for client, major in maxima.items():
        bind.execute(
            sa.text("UPDATE api_clients SET max_per_refund = :maximum WHERE name = :client"),
            {"maximum": str(major), "client": client},
        )
    with op.batch_alter_table("api_client_budgets", schema=None) as batch_op:
        batch_op.drop_constraint("ck_api_client_budgets_max_positive", type_="check")
        batch_op.drop_column("max_per_refund")
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.drop_column("requested_by")
    op.drop_index("ix_api_clients_previous_key_digest", table_name="api_clients")
    with op.batch_alter_table("api_clients", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("previous_key_until")
        batch_op.drop_column("previous_key_digest")
