"""The SQL schema, defined once: datasets, jobs, trials and their per-epoch metrics."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from app.store.backend import JSON_TYPE

# The columns' defaults; workers and store modules import them from here as well.
from app.store.statuses import JobStatus, SlotStatus, TrialStatus

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSON_TYPE, list[Any]: JSON_TYPE, datetime: UTCDateTime}


class Owned:
    """Rows that belong to the API key that created them (its owner id, see app.api.auth); NULL
    when made by a service without keys, which shows every row to everyone. Who may read
    what is decided in one place: app.store.reads.readable."""

    owner: Mapped[str | None] = mapped_column(String(64), index=True, nullable=True)


class Dataset(Owned, Base):
    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255))
    format: Mapped[str] = mapped_column(String(16))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(Integer)
    rows: Mapped[int] = mapped_column(Integer)
    target: Mapped[str] = mapped_column(String(255))
    task: Mapped[str] = mapped_column(String(16))
    # Column profile the model builder needs: kind, vocabulary, missing count.
    columns: Mapped[list[Any]] = mapped_column()
    classes: Mapped[list[Any] | None] = mapped_column(nullable=True)
    features: Mapped[int] = mapped_column(Integer)
    rows_dropped: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    jobs: Mapped[list[Job]] = relationship(back_populates="dataset")


class Job(Owned, Base):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_status_created_at", "status", "created_at"),
        # GET /jobs without a status filter: newest first (migration 0005).
        Index("ix_jobs_created_at", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    dataset_id: Mapped[str] = mapped_column(
        ForeignKey("datasets.id", ondelete="RESTRICT"), index=True
    )
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED)
    # The user's label for the job (the spec's `name` at submission; PATCH changes it).
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    spec: Mapped[dict[str, Any]] = mapped_column()
    search_space: Mapped[dict[str, Any]] = mapped_column()
    trials_planned: Mapped[int] = mapped_column(Integer)
    # Queue state: who holds the lease, until when, and which attempt this is.
    # Writes from a worker are fenced on (lease_owner, attempt).
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # parallel_trials > 1: "host:port" of the KerasTuner chief (the oracle's gRPC server)
    # while the job runs; tuner workers on any machine find it here.
    chief_address: Mapped[str | None] = mapped_column(String(255), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)
    # Migration 0006. completed / time_budget / cancelled / failed: why the search ended.
    stop_reason: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # {"linear": {"score", "test_score"?}, "gradient_boosting": {...}}: scikit-learn models
    # scored on the search's own validation rows (tuner_jobs.search.baselines).
    baselines: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    # The best model on the held-out test rows (training.test_split > 0), at the end.
    test_metrics: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    # Migration 0008. {"members": [{"trial_id", "weight"}], "score", "trial_score",
    # "test_score", "used", ...}: the greedy ensemble of its trials (tuner_jobs.search.ensemble).
    ensemble: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    # One line when a baseline scored above the job's model on the same rows; else null.
    verdict: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Migration 0009. The user's free text on the job (PATCH changes it, finished or not).
    notes: Mapped[str | None] = mapped_column(Text, nullable=True)

    dataset: Mapped[Dataset] = relationship(back_populates="jobs")
    trials: Mapped[list[Trial]] = relationship(
        back_populates="job", cascade="all, delete-orphan", passive_deletes=True
    )
    slots: Mapped[list[JobSlot]] = relationship(
        back_populates="job", cascade="all, delete-orphan", passive_deletes=True
    )


class JobSlot(Base):
    """One tuner of a parallel job (KerasTuner's KERASTUNER_TUNER_ID `tuner<slot>`).

    Slots are numbered from 1: tuner0 runs inside the chief's own process.
    A slot is claimed, leased and heartbeated like a job. It belongs to the chief of
    one job attempt (`chief_attempt`): when the chief restarts, its slots are replaced.
    A worker that takes over a dead slot reuses its tuner id, so the oracle hands it
    the interrupted trial to run again.
    """

    __tablename__ = "job_slots"
    __table_args__ = (UniqueConstraint("job_id", "slot"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    slot: Mapped[int] = mapped_column(Integer)
    chief_attempt: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=SlotStatus.OPEN, index=True)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)

    job: Mapped[Job] = relationship(back_populates="slots")

    @property
    def tuner_id(self) -> str:
        return f"tuner{self.slot}"


class Trial(Base):
    __tablename__ = "trials"
    __table_args__ = (
        UniqueConstraint("job_id", "trial_id"),
        Index("ix_trials_job_id_score", "job_id", "score"),
        # Migration 0005: a job's progress (trials by status, epochs run) is read from
        # this index alone, and its running trial found without scanning its trials;
        # trial pages in start order walk the second one instead of sorting.
        Index("ix_trials_job_id_status_epochs_run", "job_id", "status", "epochs_run"),
        Index("ix_trials_job_id_started_at", "job_id", "started_at", "trial_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    trial_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=TrialStatus.RUNNING)
    hyperparameters: Mapped[dict[str, Any]] = mapped_column()
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    best_epoch: Mapped[int | None] = mapped_column(Integer, nullable=True)
    epochs_run: Mapped[int] = mapped_column(Integer, default=0)
    stopped_early: Mapped[bool] = mapped_column(Boolean, default=False)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)
    duration_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Computed from the curve when the trial ends (app.search.overfitting).
    overfit_epoch: Mapped[int | None] = mapped_column(Integer, nullable=True)
    generalization_gap: Mapped[float | None] = mapped_column(Float, nullable=True)
    # The worker supervisor whose process ran the trial (its TUNER worker id).
    worker: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # Migration 0006: each cross-validation fold's score; stopped by the pruner; a trial
    # of this search, or one replayed from another job's (warm start: origin_job_id).
    fold_scores: Mapped[list[Any] | None] = mapped_column(nullable=True)
    pruned: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    origin: Mapped[str] = mapped_column(String(16), default="search", server_default="search")
    origin_job_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # Migration 0007: each objective's value, {name: value}, for a multi-objective job.
    objectives: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)

    job: Mapped[Job] = relationship(back_populates="trials")
    epochs: Mapped[list[TrialEpoch]] = relationship(
        back_populates="trial",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="TrialEpoch.epoch",
    )


class TrialEpoch(Base):
    __tablename__ = "trial_epochs"
    __table_args__ = (UniqueConstraint("trial_pk", "epoch"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    trial_pk: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"))
    epoch: Mapped[int] = mapped_column(Integer)
    loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    val_loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    learning_rate: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Every value Keras logged for the epoch (each compiled metric, train and val).
    metrics: Mapped[dict[str, Any]] = mapped_column()
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)

    trial: Mapped[Trial] = relationship(back_populates="epochs")
