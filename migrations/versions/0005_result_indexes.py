"""indexes for reading results at scale: progress, trial pages, the job list

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27

With 10,000 trials in a job, GET /jobs/{id} counted its finished trials and summed
their epochs by visiting every trial row, found the running trial by sorting them,
and a trial page in start order sorted all of them before skipping to its offset
(benchmarks/, item 4).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_trials_job_id_status_epochs_run", "trials", ["job_id", "status", "epochs_run"]
    )
    op.create_index("ix_trials_job_id_started_at", "trials", ["job_id", "started_at", "trial_id"])
    op.create_index("ix_jobs_created_at", "jobs", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_created_at", table_name="jobs")
    op.drop_index("ix_trials_job_id_started_at", table_name="trials")
    op.drop_index("ix_trials_job_id_status_epochs_run", table_name="trials")
