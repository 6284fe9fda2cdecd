"""Entry point of the spawned process that runs one search (TensorFlow lives only here)."""

from __future__ import annotations

import enum
import logging
import os
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from app.logs import configure_logging
from app.search.overfitting import overfitting_patience
from app.search.spec import load_spec
from app.settings import Settings
from app.store.claims import Claim, SlotClaim
from app.store.search_gateway import SearchDatabase
from app.store.uploads import dataset_path
from tuner_jobs.search.cpu import lower_priority, prepare_search_process
from tuner_jobs.search.native_noise import import_tensorflow
from tuner_jobs.search.recycling import may_run_another_job

logger = logging.getLogger(__name__)


class Role(enum.StrEnum):
    """What a spawned process does for its job."""

    SEARCH = "search"  # the whole search, in this one process
    CHIEF = "chief"  # a parallel job's oracle, served to its tuner workers
    TUNER = "tuner"  # one tuner worker of a parallel job (its slot's claim)


class Outcome(enum.StrEnum):
    """How the child's part of the search ended, as it reports it to its supervisor."""

    SUCCEEDED = "succeeded"
    STOPPED = "stopped"  # asked to stop, at an epoch boundary
    FAILED = "failed"  # an exception: the job's error, never retried
    LEASE_LOST = "lease_lost"  # another worker owns the job now
    RECYCLE = "recycle"  # this process is done; the search goes on in a fresh one


@dataclass(frozen=True)
class ChildJob:
    """What the supervisor sends a spawned process over its pipe (pickled, hence plain data:
    the settings as JSON-ready values, the claim as its frozen dataclass)."""

    settings: dict[str, Any]
    role: Role
    claim: Claim | SlotClaim


@dataclass(frozen=True)
class ChildReport:
    """The child's last word on its job to its supervisor, sent over its pipe. `reusable`:
    the process may run its worker's next job (run_spare), and waits for it."""

    outcome: Outcome
    message: str | None = None
    reusable: bool = False


class StopWhen:
    """Stop at the next epoch boundary when the supervisor says so, or when it has died;
    `budget` is set, before `event`, when it asks because the job's time budget ran out
    (tuner_jobs.search.tuners.SupervisedStop)."""

    def __init__(self, event: Any, budget: Any) -> None:
        self.event = event
        self.budget = budget
        self.parent = os.getppid()

    def is_set(self) -> bool:
        return self.event.is_set() or os.getppid() != self.parent

    def out_of_time(self) -> bool:
        return bool(self.budget.is_set())


def _connect_to_chief(slot: SlotClaim, rpc_timeout_s: float) -> None:
    """Make this process KerasTuner tuner worker `slot.tuner_id` of the chief's oracle."""
    host, _, port = slot.chief_address.rpartition(":")
    os.environ["KERASTUNER_TUNER_ID"] = slot.tuner_id
    os.environ["KERASTUNER_ORACLE_IP"] = host
    os.environ["KERASTUNER_ORACLE_PORT"] = port
    from tuner_jobs.search.keras_tuner_compat import oracle_client

    # KerasTuner waits up to an hour for a chief that does not answer; ours is either
    # up, or gone for good (the supervisor then stops this process anyway).
    oracle_client.TIMEOUT = rpc_timeout_s


def _reusable(role: Role, settings: Settings) -> bool:
    """Whether this process, its job succeeded, may run its worker's next job. A tuner
    worker is not: it was a client of another process's oracle (KerasTuner's environment
    variables and gRPC channel are its job's)."""
    return (
        settings.reuse_search_processes and role is not Role.TUNER and may_run_another_job(settings)
    )


def _between_jobs() -> None:
    """What one job leaves in this process that the next must not see: KerasTuner's
    distribution variables (its tuner id), Keras's global names and graph, and the peak
    of resident memory its supervisor samples for the next job's diagnosis."""
    import keras

    for name in ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"):
        os.environ.pop(name, None)
    keras.backend.clear_session()
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # resets VmHWM (Linux 4.0 on)
    except OSError:
        pass


def run_child(
    child_job: ChildJob,
    conn: Connection,
    stop_event: Any,
    budget_event: Any,
    searched_event: Any,
) -> bool:
    """Run the job's part that `child_job.role` names and report how it ended; returns
    whether this process may run another job (the report says so too)."""
    configure_logging()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    settings = Settings(**child_job.settings)
    lower_priority(settings.worker_nice)  # training yields the CPU to the API
    claim = child_job.claim
    # The search's one door to the database: nothing else in this process holds an engine.
    database = SearchDatabase.connect(settings, claim)
    try:
        job = database.search_job()
        dataset = job.dataset
        # Validated once, before TensorFlow: a stored spec that no longer validates fails
        # the job in a second, naming the bad fields (StoredSpecError).
        spec = load_spec(job.spec)
        upload = dataset_path(settings.datasets_dir, dataset.sha256, dataset.format)
        if not upload.is_file():
            # Before paying for TensorFlow: a worker machine whose TUNER_DATA_DIR is not
            # the shared one fails its job in a second, saying why.
            raise FileNotFoundError(
                f"dataset {dataset.id}'s file is not in this worker's TUNER_DATA_DIR "
                f"({settings.datasets_dir}); is the data directory shared with the API?"
            )
        # Before TensorFlow runs any op: cap its thread pools (TUNER_CHILD_THREADS) and
        # keep the imported stack out of gc's way.
        prepare_search_process(settings)
        # Imported here: the supervisor that spawned us must never load TensorFlow.
        import_tensorflow()  # a spare that was not warm imports it now
        from tuner_jobs.search.chief import run_chief
        from tuner_jobs.search.recorder import LeaseLost, TrialRecorder
        from tuner_jobs.search.runner import run_search
        from tuner_jobs.search.tuners import RecycleProcess, SearchStopped

        recorder = TrialRecorder(
            database, patience=overfitting_patience(spec.callbacks.early_stopping)
        )
        stop = StopWhen(stop_event, budget_event)
        try:
            if child_job.role is Role.CHIEF:
                assert isinstance(claim, Claim)
                run_chief(
                    settings=settings,
                    job=job,
                    spec=spec,
                    database=database,
                    recorder=recorder,
                    stop=stop,
                    searched=searched_event.set,
                )
            else:
                if isinstance(claim, SlotClaim):
                    _connect_to_chief(claim, rpc_timeout_s=2 * settings.lease_s)
                run_search(
                    settings=settings,
                    job=job,
                    spec=spec,
                    database=database,
                    recorder=recorder,
                    stop=stop,
                )
            reusable = _reusable(child_job.role, settings)
            conn.send(ChildReport(Outcome.SUCCEEDED, reusable=reusable))
            return reusable
        except SearchStopped:
            conn.send(ChildReport(Outcome.STOPPED))
        except RecycleProcess as exc:
            conn.send(ChildReport(Outcome.RECYCLE, str(exc)))
        except LeaseLost as exc:
            conn.send(ChildReport(Outcome.LEASE_LOST, str(exc)))
    except Exception as exc:
        # The job's error says what failed; the worker's log keeps where.
        logger.exception("search process failed", extra={"job_id": claim.job_id})
        conn.send(ChildReport(Outcome.FAILED, f"{type(exc).__name__}: {exc}"))
    finally:
        database.dispose()
    return False


def run_spare(
    nice: int,
    warm: bool,
    jobs: Connection,
    conn: Connection,
    stop_event: Any,
    budget_event: Any,
    searched_event: Any,
) -> None:
    """A search process: a `warm` one imports TensorFlow and KerasTuner (seconds of CPU)
    while its worker is idle; then it waits for its ChildJob and runs it (`run_child`).

    A job that succeeded leaves the process reusable (TUNER_REUSE_SEARCH_PROCESSES): it
    clears what the job left (`_between_jobs`) and waits for its worker's next job, so a
    queue of jobs pays TensorFlow's import once per TUNER_RECYCLE_TRIALS trials, not once
    per job. Any other end (stopped, recycled, failed, lease lost) ends the process, as
    does its worker closing `jobs` (it wants no other job from it, or it died).
    """
    lower_priority(nice)  # the import is seconds of CPU the API should not wait behind
    if warm:
        import_tensorflow()
        import keras_tuner  # noqa: F401

        import tuner_jobs.search.chief  # noqa: F401
        import tuner_jobs.search.runner  # noqa: F401

    try:
        ran = False
        while True:
            try:
                child_job = jobs.recv()
            except (EOFError, OSError):
                return
            if ran:
                _between_jobs()
            ran = True
            if not run_child(child_job, conn, stop_event, budget_event, searched_event):
                return
    finally:
        jobs.close()
        conn.close()
