"""trial objectives: each objective's value of a multi-objective job's trial

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01

A job whose `objective` is a list (tpe or nsga2) records every objective's value per
trial, `{name: value}`, from which GET /jobs/{id}/pareto finds the front. Nullable: a
single-objective trial, and every row written before, has none.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("trials") as batch_op:
        batch_op.add_column(sa.Column("objectives", JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("trials") as batch_op:
        batch_op.drop_column("objectives")
