"""Several machines, tested as several machines (issue 28).

Six hosts, each a network namespace (tests/cluster_hosts.py): PostgreSQL on `db`, the API
on `api`, a worker on each of `w1`, `w2` and `w3`, and on `client` the relay the test talks
to the API through; only TCP over a bridge joins them, on addresses that exist nowhere
else. Every process is started with the project's own command (`tuner-service migrate`,
`api`, `worker`) and settings; the data directory is one directory every host sees, as a
network file system would be. One cluster serves every case (its workers stay warm from
case to case); each case runs one small search over the three workers
(`parallel_trials: 3`), breaks something mid-trial, and then checks the whole search: the
job succeeded, every planned trial exists once and completed, each with its epochs once
and in order, the best model predicts through the API, the model card names the best
trial, and trials ran on several hosts.

`make test-cluster` and `make test` run every case wherever the machine allows (root and
`ip netns`), and say why not where it does not.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy import Engine, create_engine, text

from tests.cluster_hosts import (
    API_PORT,
    HOSTS,
    RUN_DIR_PREFIX,
    WORKER_HOSTS,
    Cluster,
    Service,
    sweep_leftovers,
    unavailable_reason,
)
from tests.factories import csv_bytes, customers_frame

# One process runs every case (tests/run_suite.py runs this module on its own): under
# `pytest -n`, each test process would build a cluster of its own.
pytestmark = pytest.mark.slow

T = TypeVar("T")

# Short leases and heartbeats, so a takeover costs seconds; database calls bounded well
# inside a lease (a silent partition fails a call in about 3 s, not TCP's minutes).
LEASE_S = 8.0
TIMINGS = {
    "TUNER_LEASE_S": str(LEASE_S),
    "TUNER_HEARTBEAT_S": "0.5",
    "TUNER_POLL_S": "0.3",
    "TUNER_DB_CONNECT_TIMEOUT_S": "2",
    "TUNER_DB_KEEPALIVES_IDLE_S": "1",
    "TUNER_DB_KEEPALIVES_INTERVAL_S": "1",
    "TUNER_DB_KEEPALIVES_COUNT": "2",
    "TUNER_DB_TCP_USER_TIMEOUT_S": "3",
    # Other work on a shared machine must not starve the searches these timings watch.
    "TUNER_WORKER_NICE": "0",
}
TRIALS = 6
EPOCHS = 5
ROWS = 400
SPEC: dict[str, Any] = {
    "tuner": {"algorithm": "random_search", "max_trials": TRIALS, "seed": 7},
    "objective": {"name": "val_loss", "direction": "min"},  # a score with no ties
    "training": {"epochs": EPOCHS, "cross_validation": None, "ensemble": None},
    "callbacks": {"early_stopping": False},  # every trial runs all its epochs
    "pruning": None,
    "parallel_trials": 3,
    "search_space": {
        "num_layers": {"type": "fixed", "value": 1},
        "units": {"type": "pow2", "min": 8, "max": 64},
        "batch_size": {"type": "fixed", "value": 16},
    },
}
ROWS_TO_PREDICT = [
    {"age (years)": 30, "income/yr": 50_000, "home city": "Porto", "plan": "pro"},
    {"age (years)": 61, "income/yr": 31_000, "home city": "Faro", "plan": "basic"},
]
JOB_TIMEOUT_S = 300
KEEP_LOGS = "TUNER_TEST_CLUSTER_KEEP"  # =1: keep every host's log, failed or not
# What the audit trigger records: every row written to these tables, and from which host.
AUDITED = ("jobs", "job_slots", "trials", "trial_epochs")


@dataclass
class Run:
    cluster: Cluster
    service: Service
    api: httpx.Client
    db: Engine
    dataset_id: str

    def host_of(self, worker_id: str | None) -> str:
        assert worker_id is not None
        return worker_id.split(":")[0]  # worker ids are host:pid:random

    def job_row(self, job_id: str) -> Any:
        with self.db.connect() as conn:
            return conn.execute(
                text(
                    "SELECT status, attempt, lease_owner, chief_address, error FROM jobs"
                    " WHERE id = :id"
                ),
                {"id": job_id},
            ).one()

    def trials(self, job_id: str) -> list[Any]:
        with self.db.connect() as conn:
            return list(
                conn.execute(
                    text(
                        "SELECT id, trial_id, status, worker, epochs_run, score, started_at"
                        " FROM trials WHERE job_id = :id ORDER BY trial_id"
                    ),
                    {"id": job_id},
                )
            )

    def trial_hosts(self, job_id: str) -> set[str]:
        """The hosts whose workers ran the job's trials, as the audit saw every trial row:
        a trial rerun elsewhere after a fault keeps only its last worker in `trials`."""
        with self.db.connect() as conn:
            workers = conn.execute(
                text(
                    "SELECT DISTINCT row_data->>'worker' FROM cluster_writes WHERE"
                    " tbl = 'trials' AND row_data->>'job_id' = :id"
                    " AND row_data->>'worker' IS NOT NULL"
                ),
                {"id": job_id},
            ).scalars()
            return {self.host_of(worker) for worker in workers}

    def now(self) -> datetime:
        """The database's clock (the same machine's as every host's)."""
        with self.db.connect() as conn:
            return conn.execute(text("SELECT clock_timestamp()")).scalar_one()


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 120) -> T:
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def _api_client(socket: Path, key: str) -> httpx.Client:
    return httpx.Client(
        transport=httpx.HTTPTransport(uds=str(socket)),
        base_url="http://api",
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )


def _api_healthy(api: httpx.Client) -> bool:
    try:
        return api.get("/healthz").status_code == 200
    except httpx.HTTPError:
        return False


def _install_audit(db: Engine) -> None:
    """A trigger that writes down every row written to the audited tables, with the
    address of the host whose connection wrote it (inet_client_addr)."""
    with db.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE cluster_writes (at timestamptz NOT NULL DEFAULT"
                " clock_timestamp(), client inet, tbl text NOT NULL, row_data jsonb)"
            )
        )
        conn.execute(
            text(
                "CREATE FUNCTION cluster_write() RETURNS trigger LANGUAGE plpgsql AS $$"
                " BEGIN INSERT INTO cluster_writes (client, tbl, row_data)"
                " VALUES (inet_client_addr(), TG_TABLE_NAME, to_jsonb(NEW)); RETURN NEW; END $$"
            )
        )
        for table in AUDITED:
            conn.execute(
                text(
                    f"CREATE TRIGGER cluster_write AFTER INSERT OR UPDATE ON {table}"
                    " FOR EACH ROW EXECUTE FUNCTION cluster_write()"
                )
            )


@pytest.fixture(scope="module")
def run(request: pytest.FixtureRequest) -> Iterator[Run]:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    sweep_leftovers()
    run_dir = Path(tempfile.mkdtemp(prefix=f"{RUN_DIR_PREFIX}{os.getpid()}-"))
    cluster = Cluster(run_dir, HOSTS)
    key = secrets.token_urlsafe(24)
    service = Service(cluster, TIMINGS, key)
    failed_before = request.session.testsfailed
    try:
        cluster.up()
        service.init_postgres()
        service.start_postgres()
        service.migrate()
        db = create_engine(service.local_database_url, pool_pre_ping=True)
        _install_audit(db)
        for host in WORKER_HOSTS:
            service.start_worker(host)  # they import TensorFlow while the API starts
        service.start_api()
        socket = service.start_forwarder("api", cluster.hosts["api"].ip, API_PORT)
        with _api_client(socket, key) as api:
            wait_for("the API", lambda: _api_healthy(api), timeout=120)
            upload = api.post(
                "/api/v1/datasets",
                files={"file": ("customers.csv", csv_bytes(customers_frame(rows=ROWS)))},
                data={"target": "churned"},
            )
            assert upload.status_code == 201, upload.text
            yield Run(cluster, service, api, db, upload.json()["id"])
        db.dispose()
    finally:
        cluster.close()
        if request.session.testsfailed > failed_before or os.environ.get(KEEP_LOGS) == "1":
            # Each host's log is in logs/; the next run's sweep removes the directory.
            print(f"\ncluster logs kept in {run_dir / 'logs'}")  # noqa: T201
        else:
            shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture
def cluster_run(run: Run) -> Run:
    """The cluster whole again before each case: every cable in, PostgreSQL, the API and
    the three workers running (what a previous case took away is started again)."""
    for host in HOSTS:
        run.cluster.heal(host)
        run.cluster.resume(host)
    if not run.cluster.pids("db"):
        run.service.start_postgres()
    if not any(proc.poll() is None for proc in run.cluster.hosts["api"].processes):
        run.service.start_api()
    for host in WORKER_HOSTS:
        if run.service.workers[host].poll() is not None:
            run.service.start_worker(host)
    wait_for("the API", lambda: _api_healthy(run.api))
    for host in WORKER_HOSTS:
        wait_for(f"{host}'s worker", lambda host=host: run.service.worker_started(host))
    # A case that failed may have left its search running: it must not take the workers.
    with run.db.connect() as conn:
        unfinished = conn.execute(
            text("SELECT id FROM jobs WHERE status IN ('queued', 'running')")
        ).scalars()
        for job_id in list(unfinished):
            run.api.post(f"/api/v1/jobs/{job_id}/cancel")
            wait_for_job(run, job_id)
    return run


class OracleProbe:
    """A KerasTuner tuner's first call (GetSpace: it changes nothing) to a chief's address,
    dialled from the client host: whether anything there still serves the oracle."""

    def __init__(self, service: Service, address: str) -> None:
        import grpc

        host, _, port = address.rpartition(":")
        socket = service.start_forwarder(f"oracle-{host}-{port}", host, int(port))
        self.channel = grpc.insecure_channel(f"unix:{socket}")
        self.get_space = self.channel.unary_unary("/keras_tuner.Oracle/GetSpace")
        self.errors = grpc.RpcError

    def answers(self) -> bool:
        try:
            self.get_space(b"", timeout=1.0)  # an empty GetSpaceRequest
        except self.errors:
            return False
        return True


def chief_pid(run: Run, host: str, job_id: str, address: str) -> int:
    """The process serving the job's oracle at `address`, as its log line names it."""
    pattern = re.compile(
        rf"search\.chief\[(\d+)\] chief serving the oracle job_id={job_id} address={address}"
    )
    found = pattern.search(run.service.log_text(host))
    assert found is not None, f"no chief at {address} in {host}'s log"
    return int(found.group(1))


def host_writes(run: Run, ip: str, since: datetime, until: datetime, new_attempt: int) -> list:
    """Rows written from the host at `ip` between the two times (`since`: the takeover), up
    to the first slot its worker claims under the job's new chief (`new_attempt`): from then
    on the host works for the new chief, and its writes are that work's."""
    with run.db.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT at, tbl, row_data FROM cluster_writes WHERE client = :ip"
                " AND at BETWEEN :since AND :until ORDER BY at"
            ),
            {"ip": ip, "since": since, "until": until},
        ).all()
    writes = []
    for row in rows:
        if row.tbl == "job_slots" and row.row_data["chief_attempt"] >= new_attempt:
            break
        writes.append(row)
    return writes


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/status").read_text().find("State:\tZ") < 0


# What every case checks once its fault has passed.


def assert_search_whole(run: Run, job_id: str) -> list[Any]:
    """The job succeeded; each planned trial exists once, completed, with its epochs once
    each and in order; the best trial is the best score; its model predicts through the
    API and its model card names it; trials ran on more than one host."""
    job = wait_for_job(run, job_id)
    assert job["status"] == "succeeded", job
    trials = run.trials(job_id)
    assert [t.trial_id for t in trials] == [str(i) for i in range(TRIALS)], trials
    assert all(t.status == "COMPLETED" for t in trials), trials
    with run.db.connect() as conn:
        epochs = conn.execute(
            text(
                "SELECT t.trial_id, e.epoch FROM trial_epochs e JOIN trials t ON t.id ="
                " e.trial_pk WHERE t.job_id = :id ORDER BY t.trial_id, e.epoch"
            ),
            {"id": job_id},
        ).all()
    for trial in trials:
        assert [e.epoch for e in epochs if e.trial_id == trial.trial_id] == list(range(EPOCHS))
        assert trial.epochs_run == EPOCHS
    best = min(trials, key=lambda t: t.score)
    assert job["best"]["trial_id"] == best.trial_id
    card = run.api.get(f"/api/v1/jobs/{job_id}/model_card")
    assert card.status_code == 200, card.text
    assert card.json()["trial_id"] == best.trial_id
    predicted = run.api.post(f"/api/v1/jobs/{job_id}/predict", json={"rows": ROWS_TO_PREDICT})
    assert predicted.status_code == 200, predicted.text
    assert len(predicted.json()["predictions"]) == len(ROWS_TO_PREDICT)
    hosts = run.trial_hosts(job_id)
    assert len(hosts) >= 2, f"every trial ran on {hosts}"
    return trials


def wait_for_job(run: Run, job_id: str) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        try:
            job = run.api.get(f"/api/v1/jobs/{job_id}").json()
        except httpx.HTTPError:
            return None  # the API is coming back
        return job if job["status"] in ("succeeded", "failed", "cancelled") else None

    return wait_for(f"job {job_id} to finish", finished, timeout=JOB_TIMEOUT_S)


def submit(run: Run) -> str:
    response = run.api.post("/api/v1/jobs", json={"dataset_id": run.dataset_id, **SPEC})
    assert response.status_code == 202, response.text
    return response.json()["id"]


def mid_trial(run: Run, job_id: str, *, on_chief: bool, completed: int = 0) -> Any:
    """A trial under way (an epoch done, two to go) on the chief's host or on another one,
    once `completed` trials have completed: where the fault lands."""

    def found() -> Any:
        chief = run.job_row(job_id).lease_owner
        trials = run.trials(job_id)
        if chief is None or sum(t.status == "COMPLETED" for t in trials) < completed:
            return None
        for trial in trials:
            if trial.status != "RUNNING" or not 1 <= trial.epochs_run <= EPOCHS - 2:
                continue
            if (run.host_of(trial.worker) == run.host_of(chief)) == on_chief:
                return trial
        return None

    return wait_for("a trial in progress", found, timeout=JOB_TIMEOUT_S)


# The faults. Each case prints what it cost (shown with -s; docs/operations.md has them).


def say(case: str, **figures: object) -> None:
    shown = ", ".join(
        f"{name.replace('_', ' ')} {value:.1f}"
        if isinstance(value, float)
        else f"{name.replace('_', ' ')} {value}"
        for name, value in figures.items()
    )
    print(f"\ncluster: {case}: {shown}")  # noqa: T201


def seconds(since: datetime, until: datetime | None) -> float:
    return float("nan") if until is None else (until - since).total_seconds()


def takeover(run: Run, job_id: str, old: Any) -> tuple[datetime | None, datetime | None]:
    """When the job was claimed again after its `old` row, and when its new chief served
    (published an address of its own)."""
    with run.db.connect() as conn:
        return conn.execute(
            text(
                "SELECT min(at), min(at) FILTER (WHERE row_data->>'chief_address' <> :address)"
                " FROM cluster_writes WHERE tbl = 'jobs' AND row_data->>'id' = :id"
                " AND (row_data->>'attempt')::int > :attempt"
            ),
            {"id": job_id, "attempt": old.attempt, "address": old.chief_address},
        ).one()


def epochs_in_flight(run: Run, job_id: str) -> int:
    """Epochs done by the trials running now: what a lost trial's rerun does again."""
    return sum(t.epochs_run for t in run.trials(job_id) if t.status == "RUNNING")


def test_a_tuner_host_lost_mid_trial(cluster_run: Run) -> None:
    """Its cable cut, then every process on it killed: its slot's lease runs out and
    another host reruns the interrupted trial; the trials it finished are kept."""
    run = cluster_run
    job_id = submit(run)
    victim = mid_trial(run, job_id, on_chief=False)
    lost = run.host_of(victim.worker)
    cut_at = run.now()
    run.cluster.cut(lost)
    lost_epochs = next(t for t in run.trials(job_id) if t.trial_id == victim.trial_id).epochs_run
    time.sleep(0.5)
    run.cluster.kill_all(lost)
    trials = assert_search_whole(run, job_id)
    rerun = next(t for t in trials if t.trial_id == victim.trial_id)
    assert run.host_of(rerun.worker) != lost
    say(
        "tuner host lost",
        trial_rerun_after_s=seconds(cut_at, rerun.started_at),
        epochs_redone=lost_epochs,
    )


def test_a_tuner_partitioned_past_its_lease_then_healed(cluster_run: Run) -> None:
    """Cut off past its slot's lease, then back: the search goes on without it, and the
    worker, alive throughout, neither duplicates a trial nor dies of it."""
    run = cluster_run
    job_id = submit(run)
    victim = mid_trial(run, job_id, on_chief=False)
    host = run.host_of(victim.worker)
    cut_at = run.now()
    run.cluster.cut(host)
    time.sleep(LEASE_S + 2)
    run.cluster.heal(host)
    trials = assert_search_whole(run, job_id)
    assert run.service.workers[host].poll() is None, "the partitioned worker died"
    rerun = next(t for t in trials if t.trial_id == victim.trial_id)
    say(
        "tuner partitioned",
        trial_rerun_after_s=seconds(cut_at, rerun.started_at),
        rerun_on=run.host_of(rerun.worker),
    )


def test_the_chief_host_lost_mid_trial(cluster_run: Run) -> None:
    """The chief's host lost: the job's lease runs out, another worker resumes it as chief
    from the project directory, and the trials completed before are not run again."""
    run = cluster_run
    job_id = submit(run)
    mid_trial(run, job_id, on_chief=True, completed=1)
    before = {t.trial_id: t for t in run.trials(job_id) if t.status == "COMPLETED"}
    chief = run.job_row(job_id)
    lost = run.host_of(chief.lease_owner)
    cut_at = run.now()
    run.cluster.cut(lost)
    redone = epochs_in_flight(run, job_id)
    time.sleep(0.5)
    run.cluster.kill_all(lost)
    trials = assert_search_whole(run, job_id)
    assert run.job_row(job_id).attempt == chief.attempt + 1
    rerun = [
        t.trial_id
        for t in trials
        if t.trial_id in before
        and (t.worker, t.started_at) != (before[t.trial_id].worker, before[t.trial_id].started_at)
    ]
    # Completed trials are kept, including the one a tuner other than the chief ended last:
    # KerasTuner's end_trial writes oracle.json before it drops the trial from its ongoing
    # ones, and the new chief takes the ended ones off its retry queue (drop_ended_retries).
    assert rerun == [], f"completed trials run again: {rerun}"
    claimed, served = takeover(run, job_id, chief)
    say(
        "chief host lost",
        job_claimed_after_s=seconds(cut_at, claimed),
        new_chief_serving_after_s=seconds(cut_at, served),
        epochs_redone=redone,
        completed_trials_rerun=len(rerun),
    )


def test_a_chief_partitioned_past_its_lease_is_fenced(cluster_run: Run) -> None:
    """The chief's host cut off past the job's lease, and frozen meanwhile (a paused VM), so
    that it comes back exactly as it was: mid-epoch, its oracle server up, its connections
    warm. Another worker has taken the job over as chief by then. Back on the network, the
    old chief must neither serve its oracle (a tuner's first call, from another host, gets
    no answer) nor write (no row reaches the database from its host) until it has given up;
    then the search ends whole, and the old chief's worker lives on."""
    run = cluster_run
    job_id = submit(run)
    mid_trial(run, job_id, on_chief=True, completed=1)
    old = run.job_row(job_id)
    host = run.host_of(old.lease_owner)
    old_chief = chief_pid(run, host, job_id, old.chief_address)
    probe = OracleProbe(run.service, old.chief_address)  # dialled from the client host
    cut_at = run.now()
    run.cluster.cut(host)
    run.cluster.pause(host)
    redone = epochs_in_flight(run, job_id)
    try:
        wait_for(
            "another worker to take the job over as chief",
            lambda: (
                (row := run.job_row(job_id)).attempt > old.attempt
                and row.chief_address not in (None, old.chief_address)
            ),
            timeout=LEASE_S * 6,
        )
    finally:
        run.cluster.heal(host)
        run.cluster.resume(host)
    healed_at = run.now()
    assert _alive(old_chief), "the old chief did not outlive its lease: nothing was fenced"
    answered = 0
    while _alive(old_chief):
        answered += probe.answers()
        time.sleep(0.05)
    gone_at = run.now()
    assert answered == 0, f"the old chief served its oracle {answered} time(s) after the takeover"
    # Until the other worker's claim the lease was the old chief's (a heartbeat sent just
    # before the cut may land after it); from the claim on, nothing of the old host's counts.
    claimed, served = takeover(run, job_id, old)
    assert claimed is not None
    writes = host_writes(run, run.cluster.hosts[host].ip, claimed, gone_at, old.attempt + 1)
    assert not writes, f"the old chief's host wrote after the job was taken over: {writes}"
    assert_search_whole(run, job_id)
    assert run.service.workers[host].poll() is None, "the old chief's worker died"
    say(
        "chief partitioned",
        job_claimed_after_s=seconds(cut_at, claimed),
        new_chief_serving_after_s=seconds(cut_at, served),
        epochs_redone=redone,
        old_chief_gone_after_heal_s=seconds(healed_at, gone_at),
    )


def test_postgresql_stopped_for_seconds(cluster_run: Run) -> None:
    """PostgreSQL down for 4 s (half a lease): the API answers 503 meanwhile, the searches
    wait, and nobody loses a lease: the job is never taken over."""
    run = cluster_run
    job_id = submit(run)
    mid_trial(run, job_id, on_chief=False)
    stopped_at = time.monotonic()
    run.service.stop_postgres()
    try:
        assert run.api.get("/healthz").status_code == 503
        time.sleep(4)
    finally:
        run.service.start_postgres()
    back_at = run.now()
    outage = time.monotonic() - stopped_at
    assert_search_whole(run, job_id)
    assert run.job_row(job_id).attempt == 1
    with run.db.connect() as conn:
        resumed = conn.execute(
            text("SELECT min(at) FROM cluster_writes WHERE tbl = 'trial_epochs' AND at > :t"),
            {"t": back_at},
        ).scalar_one()
    say("PostgreSQL stopped", outage_s=outage, first_epoch_after_s=seconds(back_at, resumed))


def test_the_api_host_lost_and_back(cluster_run: Run) -> None:
    """The API's host lost: the search goes on without it (trials complete meanwhile), and
    an API started again on the same host serves the whole result."""
    run = cluster_run
    job_id = submit(run)
    mid_trial(run, job_id, on_chief=False)
    done_before = sum(t.status == "COMPLETED" for t in run.trials(job_id))
    run.cluster.cut("api")
    run.cluster.kill_all("api")
    with pytest.raises(httpx.HTTPError):
        run.api.get("/healthz")
    wait_for(
        "a trial to complete without the API",
        lambda: sum(t.status == "COMPLETED" for t in run.trials(job_id)) > done_before,
    )
    run.cluster.heal("api")
    started = time.monotonic()
    run.service.start_api()
    wait_for("the API again", lambda: _api_healthy(run.api))
    back = time.monotonic() - started
    assert_search_whole(run, job_id)
    say("API host lost", api_back_after_start_s=back)
