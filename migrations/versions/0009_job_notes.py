"""job notes: the user's free text on a job

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-14

`notes` is the user's own text about a job (what was tried, why), set at submission and
changed at any time through PATCH /jobs/{id}, a finished job's too. Nullable: a job
without notes, and every job queued before this migration, has none.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.add_column(sa.Column("notes", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.drop_column("notes")
