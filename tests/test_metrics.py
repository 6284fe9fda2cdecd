"""GET /metrics: Prometheus text computed from what the database holds."""

from __future__ import annotations

from datetime import timedelta

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, update

from app.store.metrics import worker_label
from app.store.models import Job, Trial, TrialEpoch, utcnow
from app.store.unit_of_work import write_session
from tests.factories import customers_frame, submit, upload_ok


def _samples(api: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = api.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def test_metrics_report_jobs_queue_trials_epochs_and_heartbeats(
    api: httpx.Client, engine: Engine
) -> None:
    dataset = upload_ok(api, customers_frame(), "churned")
    submit(api, dataset["id"])  # stays queued
    running = submit(api, dataset["id"])
    now = utcnow()
    with write_session(engine) as session:
        session.execute(
            update(Job)
            .where(Job.id == running["id"])
            .values(
                status="running",
                lease_owner="host:1:abc",
                heartbeat_at=now,
                started_at=now + timedelta(seconds=3),
            )
        )
        for trial_id, duration in (("0", 0.7), ("1", 4.0)):
            trial = Trial(
                job_id=running["id"],
                trial_id=trial_id,
                status="COMPLETED",
                hyperparameters={},
                duration_s=duration,
            )
            session.add(trial)
            session.flush()
            session.add_all(
                TrialEpoch(trial_pk=trial.id, epoch=e, loss=1.0, val_loss=1.0, metrics={})
                for e in range(3)
            )
    samples = _samples(api)
    assert samples[("tuner_jobs", (("status", "queued"),))] == 1
    assert samples[("tuner_jobs", (("status", "running"),))] == 1
    assert samples[("tuner_jobs", (("status", "succeeded"),))] == 0
    assert samples[("tuner_queue_depth", ())] == 1
    assert samples[("tuner_trials_completed_total", ())] == 2
    assert samples[("tuner_epochs_recorded_total", ())] == 6
    assert samples[("tuner_trial_duration_seconds_bucket", (("le", "1.0"),))] == 1
    assert samples[("tuner_trial_duration_seconds_bucket", (("le", "5.0"),))] == 2
    assert samples[("tuner_trial_duration_seconds_count", ())] == 2
    assert samples[("tuner_trial_duration_seconds_sum", ())] == 4.7
    heartbeat = samples[
        # Hashed: API callers never see a worker's host name or pid.
        ("tuner_worker_last_heartbeat_timestamp_seconds", (("worker", worker_label("host:1:abc")),))
    ]
    assert abs(heartbeat - now.timestamp()) < 1
    assert samples[("tuner_claim_latency_seconds_count", ())] == 1
    assert samples[("tuner_claim_latency_seconds_bucket", (("le", "2.0"),))] == 0
    assert samples[("tuner_claim_latency_seconds_bucket", (("le", "5.0"),))] == 1
