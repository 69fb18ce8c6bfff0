"""runs keep their trace context

``runs.trace_context``: the W3C ``traceparent`` of the run's span, set when the run is
created with tracing on; ``runs.trace_parent``: the id of that span's parent (the request
or message that started the run). Whichever worker drives the run continues its trace.

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("trace_context", sa.String(55), nullable=True))
        batch.add_column(sa.Column("trace_parent", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("trace_parent")
        batch.drop_column("trace_context")
