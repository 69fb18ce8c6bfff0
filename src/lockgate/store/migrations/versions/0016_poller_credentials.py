"""pollers name the secret holding their repository's credentials

``pollers.credentials``: the name of a configured secret (``user:password``) sent to an
http(s) repository as basic authentication; credentials no longer go in the URL.

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pollers") as batch:
        batch.add_column(sa.Column("credentials", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pollers") as batch:
        batch.drop_column("credentials")
