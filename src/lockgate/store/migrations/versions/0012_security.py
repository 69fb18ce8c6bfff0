"""webhook bodies deduplicated by their hash

``deliveries.body_sha256``: a signed body delivered again under another (unsigned)
delivery id is a duplicate, not a new run.

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


def downgrade() -> None:
    op.drop_index("ix_deliveries_body", table_name="deliveries")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("body_sha256")
