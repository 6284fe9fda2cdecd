"""parallel trials: job slots, the chief's address, and which worker ran each trial

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.add_column(sa.Column("chief_address", sa.String(length=255), nullable=True))
    with op.batch_alter_table("trials") as batch_op:
        batch_op.add_column(sa.Column("worker", sa.String(length=128), nullable=True))
    op.create_table(
        "job_slots",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("chief_attempt", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(length=128), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["jobs.id"],
            name=op.f("fk_job_slots_job_id_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_slots")),
        sa.UniqueConstraint("job_id", "slot", name=op.f("uq_job_slots_job_id_slot")),
    )
    op.create_index("ix_job_slots_status", "job_slots", ["status"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_job_slots_status", table_name="job_slots")
    op.drop_table("job_slots")
    with op.batch_alter_table("trials") as batch_op:
        batch_op.drop_column("worker")
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.drop_column("chief_address")
