"""webhook secrets rotate with an overlap

``triggers.previous_secret`` and ``triggers.previous_until``: after a rotation the old
secret (or URL token hash) still verifies until then, so a provider can be switched over to
the new one without losing deliveries.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("triggers") as batch:
        batch.add_column(sa.Column("previous_secret", sa.Text(), nullable=True))
        batch.add_column(sa.Column("previous_until", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("triggers") as batch:
        batch.drop_column("previous_until")
        batch.drop_column("previous_secret")
