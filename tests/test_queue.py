"""The queue: atomic claims under contention, leases, fencing, cancellation."""

from __future__ import annotations

import multiprocessing
import threading

from sqlalchemy import Engine, select, update

from app.settings import Settings
from app.store.models import Job, JobStatus
from app.store.queue import (
    Claim,
    claim_job,
    finish_job,
    heartbeat,
    holds_lease,
    reap_exhausted,
    request_cancel,
    requeue_job,
)
from app.store.unit_of_work import write_session
from tests.factories import insert_jobs
from tuner_jobs.worker.supervisor import Worker


def _claim(engine: Engine, worker: str, lease_s: float = 30) -> Claim | None:
    with write_session(engine) as session:
        return claim_job(session=session, worker_id=worker, lease_s=lease_s)


def _claim_until_empty(url: str, worker_id: str, start, results) -> None:  # type: ignore[no-untyped-def]
    """A worker process taking jobs through the worker's own claim, as fast as it can."""
    worker = Worker(Settings(database_url=url), worker_id=worker_id)
    start.wait()
    claimed = []
    while (claim := worker.claim()) is not None:
        claimed.append(claim.job_id)
    results.put((worker_id, claimed))
    worker.engine.dispose()


def test_racing_workers_never_claim_a_job_twice(settings, engine: Engine) -> None:
    job_ids = insert_jobs(engine, 40)
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Event(), ctx.Queue()
    workers = [
        ctx.Process(
            target=_claim_until_empty, args=(settings.database_url, f"w{i}", start, results)
        )
        for i in range(4)
    ]
    for process in workers:
        process.start()
    start.set()
    claims = dict(results.get(timeout=120) for _ in workers)
    for process in workers:
        process.join(timeout=30)

    every_claim = [job for claimed in claims.values() for job in claimed]
    assert sorted(every_claim) == sorted(job_ids), "each job claimed exactly once"
    with engine.connect() as conn:
        rows = conn.execute(select(Job.id, Job.lease_owner, Job.attempt, Job.status)).all()
    owner = {job: worker for worker, claimed in claims.items() for job in claimed}
    assert all(r.lease_owner == owner[r.id] and r.attempt == 1 for r in rows)
    assert {r.status for r in rows} == {JobStatus.RUNNING}


def test_claims_go_oldest_first_and_skip_leased_jobs(engine: Engine) -> None:
    first, second = insert_jobs(engine, 2)
    assert _claim(engine, "a").job_id == first
    assert _claim(engine, "b").job_id == second
    assert _claim(engine, "c") is None


def test_expired_lease_is_claimed_again_and_the_old_owner_is_fenced_out(engine: Engine) -> None:
    (job_id,) = insert_jobs(engine, 1)
    stale = _claim(engine, "a", lease_s=-1)  # a lease that has already run out
    assert stale is not None
    assert stale.attempt == 1
    fresh = _claim(engine, "b")
    assert fresh == Claim(job_id=job_id, attempt=2, worker_id="b")

    with write_session(engine) as session:
        assert not holds_lease(session=session, claim=stale)
        assert heartbeat(session=session, claim=stale, lease_s=30).held is False
        assert not finish_job(session=session, claim=stale, status=JobStatus.FAILED, error="x")
        assert not requeue_job(session=session, claim=stale)
        assert holds_lease(session=session, claim=fresh)
        assert heartbeat(session=session, claim=fresh, lease_s=30).held is True
        assert finish_job(session=session, claim=fresh, status=JobStatus.SUCCEEDED)
    with engine.connect() as conn:
        job = conn.execute(select(Job).where(Job.id == job_id)).one()
    assert job.status == JobStatus.SUCCEEDED
    assert job.error is None
    assert job.lease_owner is None


def test_requeued_job_is_claimed_again(engine: Engine) -> None:
    (job_id,) = insert_jobs(engine, 1)
    claim = _claim(engine, "a")
    with write_session(engine) as session:
        assert requeue_job(session=session, claim=claim)
    again = _claim(engine, "b")
    assert again is not None
    assert again.job_id == job_id
    assert again.attempt == 2


def test_jobs_out_of_attempts_are_failed_not_retried(engine: Engine) -> None:
    (job_id,) = insert_jobs(engine, 1)
    for _ in range(2):
        assert _claim(engine, "dead", lease_s=-1) is not None
    with write_session(engine) as session:
        assert reap_exhausted(session=session, max_attempts=2) == 1
    assert _claim(engine, "c") is None
    with engine.connect() as conn:
        job = conn.execute(select(Job).where(Job.id == job_id)).one()
    assert job.status == JobStatus.FAILED
    assert "2 time(s)" in job.error


def test_cancel_queued_running_and_finished(engine: Engine) -> None:
    running, finished, queued = insert_jobs(engine, 3)
    claim = _claim(engine, "a")
    done = _claim(engine, "b")
    assert (claim.job_id, done.job_id) == (running, finished)
    with write_session(engine) as session:
        finish_job(session=session, claim=done, status=JobStatus.SUCCEEDED)

    with write_session(engine) as session:
        assert request_cancel(session=session, job_id=queued) == JobStatus.CANCELLED
        assert request_cancel(session=session, job_id=finished) is None
        assert request_cancel(session=session, job_id=running) == JobStatus.RUNNING
        # The running job's worker learns of it on its next heartbeat.
        assert heartbeat(session=session, claim=claim, lease_s=30).cancel_requested is True
    assert _claim(engine, "c") is None  # a cancelled job is never claimed


def test_concurrent_read_then_write_transactions_wait_instead_of_failing(engine: Engine) -> None:
    """The recorder (check lease, then write) beside the heartbeat (write) never errors.

    On SQLite a deferred transaction that read before another connection committed
    fails at once with "database is locked"; write sessions must BEGIN IMMEDIATE.
    """
    (job_id,) = insert_jobs(engine, 1)
    claim = _claim(engine, "a")
    errors: list[BaseException] = []

    def recorder() -> None:
        try:
            for _ in range(150):
                with write_session(engine) as session:
                    assert holds_lease(session=session, claim=claim)
                    session.execute(update(Job).where(Job.id == job_id).values(error="recording"))
        except BaseException as exc:  # collected for the main thread
            errors.append(exc)

    def heartbeats() -> None:
        try:
            for _ in range(150):
                with write_session(engine) as session:
                    assert heartbeat(session=session, claim=claim, lease_s=30).held
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=recorder), threading.Thread(target=heartbeats)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
