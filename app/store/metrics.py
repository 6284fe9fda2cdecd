"""GET /metrics: Prometheus text format, computed from the database at scrape time.

All state lives in SQL, so any API replica reports the whole fleet: jobs of
every worker on every machine, not just what one process happened to see.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
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

from app.store.models import Job, JobStatus, Trial, TrialEpoch, TrialStatus

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


def metrics_registry(engine: Engine) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(engine))  # type: ignore[arg-type]
    return registry
