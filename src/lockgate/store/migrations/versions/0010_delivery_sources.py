"""deliveries of every trigger: webhooks, schedule ticks and poller firings

``deliveries.trigger_id`` names a webhook trigger, a schedule or a poller (``source`` says
which), so it no longer references ``triggers``; deleting any of them deletes its deliveries.

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


def _deliveries_before() -> sa.Table:
    """The table as it was, without its foreign key: what SQLite copies from."""
    return sa.Table(
        "deliveries",
        sa.MetaData(),
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("trigger_id", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("event", sa.JSON(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=True),
        sa.Column("run_ids", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("trigger_id", "key", name="uq_deliveries_once"),
        sa.Index("ix_deliveries_trigger", "trigger_id", "id"),
    )


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # SQLite cannot drop a constraint: copy the table into its new shape.
        with op.batch_alter_table(
            "deliveries", recreate="always", copy_from=_deliveries_before()
        ) as batch:
            batch.add_column(
                sa.Column("source", sa.String(length=10), nullable=False, server_default="webhook")
            )
    else:
        op.drop_constraint("deliveries_trigger_id_fkey", "deliveries", type_="foreignkey")
        op.add_column(
            "deliveries",
            sa.Column("source", sa.String(length=10), nullable=False, server_default="webhook"),
        )


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM deliveries WHERE source <> 'webhook'"))
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("source")
        batch.create_foreign_key(
            "deliveries_trigger_id_fkey", "triggers", ["trigger_id"], ["id"], ondelete="CASCADE"
        )
