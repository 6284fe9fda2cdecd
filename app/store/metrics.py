"""GET /metrics: Prometheus text format, computed at scrape time from the database and from
the workers' records in the shared data dir (app.store.worker_files).

Both are shared by every process, so any API replica reports the whole fleet: jobs of
every worker on every machine, not just what one process happened to see. The one
exception is `serve`'s count of worker restarts, which only its own process knows.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString
from sqlalchemy import Engine, case, func, select
from sqlalchemy.orm import Session

from app.settings import Settings
from app.store.models import Job, JobStatus, Trial, TrialEpoch, TrialStatus
from app.store.worker_files import (
    HEARTBEAT_FAILURES,
    LEASES_LOST,
    SLOTS_LOST,
    TAKEOVERS,
    read_records,
)

TRIAL_SECONDS_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
CLAIM_SECONDS_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600)
CLAIM_LATENCY_SAMPLE = 1000  # the most recent started jobs


def _histogram(
    name: str, doc: str, values: list[float], buckets: tuple[float, ...]
) -> HistogramMetricFamily:
    cumulative = [(floatToGoString(b), sum(v <= b for v in values)) for b in buckets]
    cumulative.append(("+Inf", len(values)))
    return HistogramMetricFamily(name, doc, buckets=cumulative, sum_value=sum(values))


class DatabaseCollector:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        with Session(self.engine) as session:
            by_status = dict(
                session.execute(select(Job.status, func.count()).group_by(Job.status)).all()
            )
            jobs = GaugeMetricFamily("tuner_jobs", "Jobs by status", labels=["status"])
            for status in JobStatus:
                jobs.add_metric([status.value], by_status.get(status.value, 0))
            yield jobs
            yield GaugeMetricFamily(
                "tuner_queue_depth", "Jobs waiting for a worker", value=by_status.get("queued", 0)
            )

            finished = [s.value for s in TrialStatus if s.is_finished()]
            trials = session.scalar(
                select(func.count()).select_from(Trial).where(Trial.status.in_(finished))
            )
            yield CounterMetricFamily("tuner_trials_completed", "Trials finished", value=trials)
            epochs = session.scalar(select(func.count()).select_from(TrialEpoch))
            yield CounterMetricFamily("tuner_epochs_recorded", "Epoch rows recorded", value=epochs)

            bucket_counts = session.execute(
                select(
                    func.count(Trial.duration_s),
                    func.coalesce(func.sum(Trial.duration_s), 0.0),
                    *(
                        func.sum(case((Trial.duration_s <= b, 1), else_=0))
                        for b in TRIAL_SECONDS_BUCKETS
                    ),
                )
            ).one()
            count, total, *per_bucket = bucket_counts
            cumulative = [
                (floatToGoString(b), int(n or 0))
                for b, n in zip(TRIAL_SECONDS_BUCKETS, per_bucket, strict=True)
            ]
            cumulative.append(("+Inf", int(count or 0)))
            yield HistogramMetricFamily(
                "tuner_trial_duration_seconds",
                "Duration of finished trials",
                buckets=cumulative,
                sum_value=float(total or 0.0),
            )

            beats = GaugeMetricFamily(
                "tuner_worker_last_heartbeat_timestamp_seconds",
                "Last heartbeat of each worker holding a running job (worker: a hash of its id)",
                labels=["worker"],
            )
            for worker, last in session.execute(
                select(Job.lease_owner, func.max(Job.heartbeat_at))
                .where(Job.status == JobStatus.RUNNING, Job.lease_owner.is_not(None))
                .group_by(Job.lease_owner)
            ).all():
                beats.add_metric([worker_label(worker)], _timestamp(last))
            yield beats

            started = session.execute(
                select(Job.created_at, Job.started_at)
                .where(Job.started_at.is_not(None))
                .order_by(Job.started_at.desc())
                .limit(CLAIM_LATENCY_SAMPLE)
            ).all()
            yield _histogram(
                "tuner_claim_latency_seconds",
                f"Time from submission to first claim (latest {CLAIM_LATENCY_SAMPLE} jobs)",
                [max(0.0, (s - c).total_seconds()) for c, s in started],
                CLAIM_SECONDS_BUCKETS,
            )


def worker_label(worker_id: str) -> str:
    """A worker's id (host:pid:nonce) hashed: stable per worker for dashboards, while host
    names and process ids stay out of what API callers can read."""
    return hashlib.sha256(worker_id.encode()).hexdigest()[:12]


def _timestamp(value: datetime | None) -> float:
    return value.timestamp() if value is not None else 0.0


class WorkerCollector:
    """The workers' own records (app.store.worker_files): how many are alive, and their
    counts of what went wrong; and, under `serve`, how often it restarted a worker."""

    def __init__(self, settings: Settings, restarts: Callable[[], int | None]) -> None:
        self.settings = settings
        self.restarts = restarts

    def collect(self) -> Iterator[Metric]:
        now = time.time()
        records = read_records(self.settings)
        alive = [r for r in records if r.alive(now=now, lease_s=self.settings.lease_s)]
        yield GaugeMetricFamily(
            "tuner_workers_alive",
            "Workers whose record was rewritten within a lease (TUNER_LEASE_S)",
            value=len(alive),
        )
        for name, doc in WORKER_COUNTS.items():
            # Dead workers' counts stay in the sum until their record is pruned.
            total = sum(r.counts.get(name, 0) for r in records)
            yield CounterMetricFamily(f"tuner_worker_{name}", doc, value=total)
        restarts = self.restarts()
        if restarts is not None:
            yield CounterMetricFamily(
                "tuner_worker_restarts",
                "Workers `serve` restarted after they died or exited",
                value=restarts,
            )


WORKER_COUNTS = {
    LEASES_LOST: "Job leases a worker found taken over by another worker",
    SLOTS_LOST: "Tuner slot leases a worker found taken over, or whose chief restarted",
    HEARTBEAT_FAILURES: "Heartbeats that could not reach the database",
    TAKEOVERS: "Jobs and slots claimed from a worker that had stopped heartbeating",
}


def metrics_registry(
    engine: Engine,
    settings: Settings | None = None,
    restarts: Callable[[], int | None] = lambda: None,
) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(engine))  # type: ignore[arg-type]
    if settings is not None:
        registry.register(WorkerCollector(settings, restarts))  # type: ignore[arg-type]
    return registry
