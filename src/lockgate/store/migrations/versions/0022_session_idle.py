"""console sessions remember when they were last used, and a note for their next page

``console_sessions.last_seen_at``: a session idle for longer than the console's idle
timeout ends; an admin lists live sessions and revokes them. ``console_sessions.flash``:
what an action did, shown once on the next page (kept here, not in the URL).

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
        batch.add_column(sa.Column("flash", sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("console_sessions") as batch:
        batch.drop_column("flash")
        batch.drop_column("last_seen_at")
