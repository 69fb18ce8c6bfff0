"""the webhook replay guard, apart from delivery retention

``webhook_replays``: what identified each webhook delivery (a hash of its signed body, or
of a signed unique id) with its own retention window, so that pruning deliveries does not
let an old signed body be replayed. Filled from the deliveries' ``body_sha256``.

Revision ID: 0021
Revises: 0020
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_replays",
        sa.Column("trigger_id", sa.String(length=64), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("seen_at", sa.Float(), nullable=False),
        sa.Column("delivery_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("trigger_id", "digest"),
    )
    op.create_index("ix_webhook_replays_seen", "webhook_replays", ["seen_at"])
    op.execute(
        "INSERT INTO webhook_replays (trigger_id, digest, seen_at, delivery_id) "
        "SELECT trigger_id, body_sha256, MIN(received_at), MIN(id) FROM deliveries "
        "WHERE body_sha256 IS NOT NULL AND source = 'webhook' "
        "GROUP BY trigger_id, body_sha256"
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_replays_seen", "webhook_replays")
    op.drop_table("webhook_replays")
