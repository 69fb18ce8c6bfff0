"""webhook bodies deduplicated by their hash; push tokens per channel and tenant

``deliveries.body_sha256``: a signed body delivered again under another (unsigned)
delivery id is a duplicate, not a new run. ``push_tokens`` binds each push token to a
channel and a tenant; the channel-wide ``channels.push_token_hash`` goes (such tokens stop
working: make one per tenant).

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
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("body_sha256", sa.String(length=64), nullable=True))
    op.create_index("ix_deliveries_body", "deliveries", ["trigger_id", "body_sha256"])
    op.create_table(
        "push_tokens",
        sa.Column("channel", sa.String(length=200), nullable=False),
        sa.Column("tenant", sa.String(length=200), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["channel"], ["channels.name"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("channel", "tenant"),
        sa.UniqueConstraint("hash"),
    )
    with op.batch_alter_table("channels") as batch:
        batch.drop_column("push_token_hash")


def downgrade() -> None:
    with op.batch_alter_table("channels") as batch:
        batch.add_column(sa.Column("push_token_hash", sa.String(length=64), nullable=True))
    op.drop_table("push_tokens")
    op.drop_index("ix_deliveries_body", table_name="deliveries")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("body_sha256")
