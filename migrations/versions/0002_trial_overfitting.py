"""trial overfitting: overfit_epoch and generalization_gap

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: trials recorded before this migration simply have no assessment.
    with op.batch_alter_table("trials") as batch_op:
        batch_op.add_column(sa.Column("overfit_epoch", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("generalization_gap", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("trials") as batch_op:
        batch_op.drop_column("generalization_gap")
        batch_op.drop_column("overfit_epoch")
