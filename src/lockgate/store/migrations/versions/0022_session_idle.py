"""console sessions remember when they were last used

``console_sessions.last_seen_at``: a session idle for longer than the console's idle
timeout ends; an admin lists live sessions and revokes them.

Revision ID: 0022
Revises: 0021
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("console_sessions") as batch:
        batch.add_column(sa.Column("last_seen_at", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("console_sessions") as batch:
        batch.drop_column("last_seen_at")
