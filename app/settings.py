"""Settings, read once from the environment (prefix TUNER_) and `.env`."""

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TUNER_", env_file=".env", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    database_url: str = "sqlite:///./var/tuner.db"
    data_dir: Path = Path("./var")
    # Unset: one per core this process may run on (machine_cores), each search process with
    # its share of the cores as TensorFlow threads (serve_layout).
    workers: int | None = Field(
        default=None, ge=0, description="worker supervisors started by `serve`"
    )
    api_keys: str | None = None
    max_upload_mb: int = Field(default=200, ge=1)
    max_rows: int = Field(default=2_000_000, ge=1)
    max_columns: int = Field(default=2_000, ge=1)

    # Queue timings: a lease is renewed every `heartbeat_s`; a job whose lease
    # is older than `lease_s` belongs to a dead worker and may be claimed again.
    lease_s: float = Field(default=30.0, gt=0)
    heartbeat_s: float = Field(default=2.0, gt=0)
    poll_s: float = Field(default=1.0, gt=0)
    max_attempts: int = Field(default=3, ge=1)
    # SQLite only: how long a writer waits for the write lock before the database
    # counts as unavailable (the API answers 503, a worker retries within its lease).
    sqlite_busy_timeout_s: float = Field(default=30.0, gt=0)

    # TensorFlow leaks a few MB per trial even with clear_session: a search process
    # is replaced (the search resumes in a fresh one) after this many trials, or
    # once its resident memory passes this many MB.
    recycle_trials: int = Field(default=25, ge=1)
    recycle_rss_mb: int = Field(default=4096, ge=64)

    # Search children yield the CPU to the API on a shared machine (os.nice: 0 = as the
    # worker, 19 = lowest). Threads: TensorFlow's intra-op pool per child; 0 keeps its
    # default (one per core). 1 lets N children train N trials at once on N cores
    # without their thread pools fighting over them.
    worker_nice: int = Field(default=10, ge=0, le=19)
    child_threads: int = Field(default=0, ge=0)

    # An idle worker keeps one search process with TensorFlow already imported.
    prewarm: bool = True
    # A search process whose job succeeded runs its worker's next job (within the recycle
    # thresholds above) instead of exiting: TensorFlow's import is paid once, not per job.
    reuse_search_processes: bool = True
    # Trials whose networks are the same train one built, compiled and traced model
    # (tuner_jobs.search.model_reuse); 0 builds every trial's model as KerasTuner does.
    model_reuse: bool = True

    # Parallel jobs (parallel_trials > 1): the chief serves KerasTuner's oracle over gRPC
    # on `oracle_bind` (a free port); tuner workers dial `oracle_advertise` (default: the
    # bind address, or this host's name when binding every interface). Several machines:
    # TUNER_ORACLE_BIND=0.0.0.0 and an address the other workers can reach.
    oracle_bind: str = "127.0.0.1"
    oracle_advertise: str | None = None

    # Hostile-input caps (app.api.limits, app.search.spec_limits, app.store.fair_share).
    # A JSON body larger than this is a 413 before it is parsed.
    max_json_kb: int = Field(default=256, ge=1)
    # A search's planned size: trials x epochs per trial x executions per trial.
    max_search_epochs: int = Field(default=1_000_000, ge=1)
    # Parameters of the largest network a search space allows (features, max units, max layers).
    max_model_params: int = Field(default=20_000_000, ge=1)
    # Queued + running jobs one API key may have at once (a 429 past it).
    max_jobs_per_key: int = Field(default=100, ge=1)
    # GET /metrics: a bearer token just for scrapers; unset, any API key (when keys are set).
    metrics_token: str | None = None
    # /healthz is degraded below this much free space on the data dir's disk.
    min_free_disk_mb: int = Field(default=512, ge=0)

    # Uploads (app.api.routes.datasets, app.search.profiler, app.search.column_checks).
    # A table's width after encoding (a number: 1; a categorical column: its categories + 1).
    max_features: int = Field(default=10_000, ge=1)
    # The memory a profile of one upload may take; unset, 4 x TUNER_MAX_UPLOAD_MB.
    profile_memory_mb: int | None = Field(default=None, ge=1)
    # Uploads being received at once, per API key and in all (a 429 past either), and how
    # long an upload may send nothing before it is dropped (408).
    max_uploads_per_key: int = Field(default=4, ge=1)
    max_uploads: int = Field(default=16, ge=1)
    upload_stall_s: float = Field(default=30.0, gt=0)
    # A search process's data, model and batch, estimated at submission (app.search.
    # spec_limits): more is a 422. TensorFlow's own memory comes on top of it.
    max_search_memory_mb: int = Field(default=3072, ge=64)

    # Supervision and fairness (issues 26 and 28).
    # Predictions one API key may have in flight (queued or running); a 429 past it.
    max_predictions_per_key: int = Field(default=4, ge=1)
    # Claims go first to the key with the fewest jobs running, then with the fewest jobs
    # run among those submitted within this window (app.store.queue.claim_job).
    fair_share_window_s: float = Field(default=3600.0, gt=0)
    # A search process whose resident memory passes this is killed by its worker, before
    # the machine's out-of-memory killer picks a process itself; 0: no cap.
    search_rss_cap_mb: int = Field(default=0, ge=0)
    # PostgreSQL: how long a connection attempt may take, and TCP keepalives and the
    # unacknowledged-data timeout, so that a silent network partition fails a database
    # call within a lease (TUNER_LEASE_S, 30 s by default) instead of waiting on TCP
    # retransmission for many minutes: a worker cut off learns that it lost its job soon.
    db_connect_timeout_s: int = Field(default=10, ge=1)
    db_keepalives_idle_s: int = Field(default=30, ge=1)
    db_keepalives_interval_s: int = Field(default=10, ge=1)
    db_keepalives_count: int = Field(default=3, ge=1)
    db_tcp_user_timeout_s: int = Field(default=20, ge=0)

    @property
    def datasets_dir(self) -> Path:
        return self.data_dir / "datasets"

    @property
    def jobs_dir(self) -> Path:
        return self.data_dir / "jobs"


def machine_cores() -> int:
    """Cores this process may run on: its CPU affinity (a container's cpuset, taskset), not
    the machine's count."""
    if hasattr(os, "process_cpu_count"):  # Python 3.13
        return os.process_cpu_count() or 1
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def serve_layout(settings: Settings, cores: int | None = None) -> tuple[int, int]:
    """How `serve` uses the machine: (workers, TensorFlow threads per search process).

    TUNER_WORKERS and TUNER_CHILD_THREADS win when set; else one worker per core, and each
    search process gets cores // workers threads (at least 1), so N workers training at once
    keep N cores busy without their thread pools fighting over them (docs/operations.md has
    the measurement)."""
    cores = cores or machine_cores()
    workers = cores if settings.workers is None else settings.workers
    if "child_threads" in settings.model_fields_set:
        return workers, settings.child_threads
    return workers, max(1, cores // max(1, workers))


@lru_cache
def get_settings() -> Settings:
    return Settings()
