"""Two-phase ledger transfers and the export outbox; reservations count their holds; refunds keep
their allocation.

Every posting before this revision had one debit and one credit line of the same amount, so each
becomes one `single` transfer under its posting key, queued for export like every posted transfer.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ledger_transfers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("transfer_key", sa.String(length=200), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("merchant", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("debit_account", sa.String(length=120), nullable=False),
        sa.Column("credit_account", sa.String(length=120), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("phase", sa.String(length=16), nullable=False),
        sa.Column("pending_id", sa.Integer(), nullable=True),
        sa.Column("description", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(pending_id IS NULL) = (phase IN ('single', 'pending'))", name="ck_ledger_transfers_resolves"
        ),
        sa.CheckConstraint(
            "phase IN ('single', 'pending', 'post_pending', 'void_pending')", name="ck_ledger_transfers_phase"
        ),
        sa.CheckConstraint("amount > 0", name="ck_ledger_transfers_amount_positive"),
        sa.CheckConstraint("debit_account <> credit_account", name="ck_ledger_transfers_two_accounts"),
        sa.ForeignKeyConstraint(["pending_id"], ["ledger_transfers.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("pending_id"),
        sa.UniqueConstraint("transfer_key"),
    )
    with op.batch_alter_table("ledger_transfers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ledger_transfers_request_id"), ["request_id"], unique=False)

    op.create_table(
        "ledger_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("transfer_id", sa.Integer(), nullable=False),
        sa.Column("exported_batch", sa.String(length=64), nullable=True),
        sa.Column("exported_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["transfer_id"], ["ledger_transfers.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("transfer_id"),
    )
    with op.batch_alter_table("ledger_outbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ledger_outbox_exported_batch"), ["exported_batch"], unique=False)

    # each old posting: its debit line and its credit line, as one transfer; the merchant is the
    # accounts' first segment
    merchant = (
        "substr(d.account, 1, instr(d.account, ':') - 1)"
        if op.get_bind().dialect.name == "sqlite"
        else "split_part(d.account, ':', 1)"
    )
    op.execute(
        f"""
        INSERT INTO ledger_transfers (transfer_key, request_id, merchant, currency, debit_account,
            credit_account, amount, phase, pending_id, description, created_at)
        SELECT p.posting_key, p.request_id, {merchant}, p.currency, d.account, c.account, d.debit,
            'single', NULL, p.description, p.posted_at
        FROM ledger_postings p
        JOIN ledger_lines d ON d.posting_key = p.posting_key AND d.debit > 0
        JOIN ledger_lines c ON c.posting_key = p.posting_key AND c.credit > 0
        ORDER BY p.posted_at
        """
    )
    op.execute("INSERT INTO ledger_outbox (transfer_id) SELECT id FROM ledger_transfers ORDER BY id")

    with op.batch_alter_table("ledger_postings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_postings_request_id"))
    with op.batch_alter_table("ledger_lines", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_lines_posting_key"))
    op.drop_table("ledger_lines")
    op.drop_table("ledger_postings")

    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("allocation", sa.String(), nullable=True))
    with op.batch_alter_table("reservations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("holds", sa.Integer(), server_default="1", nullable=False))


def downgrade() -> None:
    """Back to debit and credit lines: posted transfers only (pending ones did not exist then)."""
    with op.batch_alter_table("reservations", schema=None) as batch_op:
        batch_op.drop_column("holds")
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.drop_column("allocation")

    op.create_table(
        "ledger_postings",
        sa.Column("posting_key", sa.String(length=200), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=False),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("posting_key"),
    )
    with op.batch_alter_table("ledger_postings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ledger_postings_request_id"), ["request_id"], unique=False)
    op.create_table(
        "ledger_lines",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("posting_key", sa.String(length=200), nullable=False),
        sa.Column("account", sa.String(length=200), nullable=False),
        sa.Column("debit", sa.BigInteger(), nullable=False),
        sa.Column("credit", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.ForeignKeyConstraint(["posting_key"], ["ledger_postings.posting_key"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("ledger_lines", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ledger_lines_posting_key"), ["posting_key"], unique=False)

    posted = "phase IN ('single', 'post_pending')"
    op.execute(
        "INSERT INTO ledger_postings (posting_key, request_id, currency, description, posted_at)"
        " SELECT transfer_key, request_id, currency, description, created_at"
        f" FROM ledger_transfers WHERE {posted}"
    )
    for side, debit, credit in (("debit_account", "amount", "0"), ("credit_account", "0", "amount")):
        op.execute(
            "INSERT INTO ledger_lines (posting_key, account, debit, credit, currency)"
            f" SELECT transfer_key, {side}, {debit}, {credit}, currency FROM ledger_transfers WHERE {posted}"
        )

    with op.batch_alter_table("ledger_outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_outbox_exported_batch"))
    op.drop_table("ledger_outbox")
    with op.batch_alter_table("ledger_transfers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_transfers_request_id"))
    op.drop_table("ledger_transfers")
