"""approval requests stored as rendered, settled in one transaction; token subjects

``approvals`` holds each approval step's rendered request and its outcome, so that the
decision that settles a step and every later one are ordered by one row's lock.
``tokens.subject`` names the person or machine a token acts for (its name until set).
Runs parked for decisions are woken, so that their approval steps store their requests.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "approvals",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("step", sa.String(length=200), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=True),
        sa.Column("opened_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=True),
        sa.Column("settled_by", sa.String(length=200), nullable=True),
        sa.Column("settled_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "step"),
    )
    op.create_index("ix_approvals_open", "approvals", ["outcome", "opened_at"])
    with op.batch_alter_table("tokens") as batch:
        batch.add_column(sa.Column("subject", sa.String(length=200), nullable=True))
    op.execute("UPDATE tokens SET subject = name")
    # Runs parked until woken wait for decisions on an approval step that stored no request
    # (it did not exist before): wake them, so that the step asks again and stores it.
    op.execute(
        sa.text(
            "UPDATE runs SET wake_at = :now WHERE status = 'WAITING' AND wake_at IS NULL"
        ).bindparams(now=time.time())
    )


def downgrade() -> None:
    with op.batch_alter_table("tokens") as batch:
        batch.drop_column("subject")
    op.drop_index("ix_approvals_open", table_name="approvals")
    op.drop_table("approvals")
