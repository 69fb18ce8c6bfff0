"""schedules: cron and interval triggers

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
    op.create_table(
        "schedules",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("namespace", sa.String(length=200), nullable=False),
        sa.Column("pipeline", sa.String(length=200), nullable=False),
        sa.Column("cron", sa.String(length=200), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("interval_seconds", sa.Float(), nullable=True),
        sa.Column("misfire", sa.String(length=10), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("next_fire_at", sa.Float(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("schedules") as batch_op:
        batch_op.create_index("ix_schedules_due", ["next_fire_at"], unique=False)


def downgrade() -> None:
    op.drop_table("schedules")
