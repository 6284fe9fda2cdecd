"""(4) Results at scale: one job with 10,000 trials and 500,000 epoch rows.

The rows are written straight into the database (benchmarks/bulk.py), then a real
API process answers over HTTP: the top 50 trials by score, and one trial's curve
(its 50 epochs, a different trial each request). One client, requests back to back
for 2 s each; the median is the figure. On SQLite and, when TUNER_TEST_POSTGRES_URL
is set, on a scratch PostgreSQL database (after VACUUM ANALYZE, as autovacuum would
do after a load this size). Also shown: the job itself (its progress counts all
10,000 trials) and the last page of trials in start order.
"""

from __future__ import annotations

import random
import time

from app.store.db import make_engine
from app.store.migrate import upgrade
from benchmarks.bulk import load_trials, make_dataset_and_job
from benchmarks.harness import scratch_postgres, service
from benchmarks.loadgen import run_clients
from benchmarks.report import Row

TRIALS, EPOCHS = 10_000, 50
SECONDS = 2.0
TARGET_MS = 50.0


def _load(url: str) -> tuple[str, list[str], float]:
    upgrade(url)
    engine = make_engine(url)
    started = time.monotonic()
    job_id = make_dataset_and_job(engine, trials=TRIALS)
    trial_ids = load_trials(engine, job_id, trials=TRIALS, epochs=EPOCHS)
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    engine.dispose()
    return job_id, trial_ids, time.monotonic() - started


def _median_ms(url: str, path_of: object) -> float:
    result = run_clients(url, 1, SECONDS, lambda _c, n: ("GET", path_of(n), None))  # type: ignore[operator]
    assert set(result.statuses) == {200}, result.statuses
    return result.percentile(50)


def _backend(name: str, database_url: str) -> list[Row]:
    job_id, trial_ids, load_s = _load(database_url)
    rng = random.Random(1)
    jobs = f"/api/v1/jobs/{job_id}"
    with service(database_url=database_url) as (svc, _client):
        top = _median_ms(svc.url, lambda _n: f"{jobs}/trials?order=score&limit=50")
        curve = _median_ms(svc.url, lambda _n: f"{jobs}/trials/{rng.choice(trial_ids)}")
        job = _median_ms(svc.url, lambda _n: jobs)
        last_page = _median_ms(svc.url, lambda _n: f"{jobs}/trials?limit=50&offset={TRIALS - 50}")
    note = f"loaded in {load_s:.0f} s"
    return [
        Row(
            f"4. results at scale ({name})",
            "top 50 trials by score, median",
            f"{top:.1f} ms",
            f"< {TARGET_MS:.0f} ms",
            top < TARGET_MS,
            f"10,000 trials, 500,000 epochs; {note}",
        ),
        Row("", "one trial's curve (50 epochs), median", f"{curve:.1f} ms", "< 50 ms", curve < 50),
        Row("", "the job (progress over 10,000 trials), median", f"{job:.1f} ms"),
        Row("", "last page of 50 trials in start order, median", f"{last_page:.1f} ms"),
    ]


def measure() -> list[Row]:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(prefix="tuner-bench-") as tmp:
        rows = _backend("SQLite", f"sqlite:///{Path(tmp) / 'scale.db'}")
    with scratch_postgres() as pg_url:
        if pg_url is None:
            rows.append(
                Row(
                    "4. results at scale (PostgreSQL)",
                    "not measured",
                    "-",
                    note="TUNER_TEST_POSTGRES_URL is not set (`. /tmp/pgenv` or .ci/run sets it)",
                )
            )
        else:
            rows += _backend("PostgreSQL", pg_url)
    return rows


if __name__ == "__main__":
    for row in measure():
        print(row)
