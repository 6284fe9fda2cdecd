"""search quality: stop reason, baselines and test score of a job; fold scores, pruning and
origin of a trial

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

One migration for the columns of the second round, so the schema changes once: a job's
`name`; cross-validation (`fold_scores`), pruning (`pruned`), warm starts (`origin`,
`origin_job_id`), time budgets (`stop_reason`), baselines and the held-out test score.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    # Nullable, or with a server default: rows written before this migration stay valid
    # (their trials were all plain search trials, never pruned).
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.add_column(sa.Column("name", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("stop_reason", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("baselines", JSON, nullable=True))
        batch_op.add_column(sa.Column("test_metrics", JSON, nullable=True))
    with op.batch_alter_table("trials") as batch_op:
        batch_op.add_column(sa.Column("fold_scores", JSON, nullable=True))
        batch_op.add_column(
            sa.Column("pruned", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(
            sa.Column("origin", sa.String(length=16), server_default="search", nullable=False)
        )
        batch_op.add_column(sa.Column("origin_job_id", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("trials") as batch_op:
        batch_op.drop_column("origin_job_id")
        batch_op.drop_column("origin")
        batch_op.drop_column("pruned")
        batch_op.drop_column("fold_scores")
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.drop_column("test_metrics")
        batch_op.drop_column("baselines")
        batch_op.drop_column("stop_reason")
        batch_op.drop_column("name")
