"""owner of datasets and jobs (the API key that created them)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: rows made without API keys (the embedded single-user mode) have no owner.
    for table in ("datasets", "jobs"):
        with op.batch_alter_table(table) as batch_op:
            batch_op.add_column(sa.Column("owner", sa.String(length=64), nullable=True))
            batch_op.create_index(f"ix_{table}_owner", ["owner"], unique=False)


def downgrade() -> None:
    for table in ("jobs", "datasets"):
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_index(f"ix_{table}_owner")
            batch_op.drop_column("owner")
