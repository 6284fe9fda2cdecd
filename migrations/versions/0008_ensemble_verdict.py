"""ensemble and verdict: the ensemble of a job's trials, and a baseline's verdict

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07

After the search, greedy ensemble selection picks a weighted set of the job's trials
(`ensemble`: members, weights, its score beside the best trial's, whether it is the job's
model); `verdict` is one line when a baseline scored above the job's model on the same
folds. Nullable: a job that has not ended, or ended before this migration, has neither.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.add_column(sa.Column("ensemble", JSON, nullable=True))
        batch_op.add_column(sa.Column("verdict", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.drop_column("verdict")
        batch_op.drop_column("ensemble")
