"""Which workers are alive: each keeps a small record under TUNER_DATA_DIR/workers/, rewritten
every heartbeat and removed when it exits cleanly.

The data directory is the one thing every API and every worker already shares (uploads are
read by whichever worker claims the job, models written by workers are served by the API),
so an API on any machine can tell whether any worker is alive (GET /healthz), including an
idle one, which leaves no trace in the database. A record not rewritten for a lease
(TUNER_LEASE_S) belongs to a dead worker, as its jobs' leases would say. Each record also
carries the worker's counts of what went wrong (leases taken over, failed heartbeats), so
GET /metrics reports them for the whole fleet.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from app.settings import Settings

WORKERS_DIR = "workers"

# What a worker counts (WorkerRecord.counts): its job's lease or a slot's taken over by
# another worker, heartbeats that failed to reach the database, jobs it took over from a
# worker that stopped heartbeating.
LEASES_LOST = "leases_lost"
SLOTS_LOST = "slots_lost"
HEARTBEAT_FAILURES = "heartbeat_failures"
TAKEOVERS = "takeovers"
COUNTS = (LEASES_LOST, SLOTS_LOST, HEARTBEAT_FAILURES, TAKEOVERS)


@dataclass
class WorkerRecord:
    worker_id: str
    host: str
    pid: int
    started_at: float  # seconds since the epoch, as every timestamp here
    beat_at: float
    counts: dict[str, int] = field(default_factory=dict)

    def alive(self, *, now: float, lease_s: float) -> bool:
        return now - self.beat_at <= lease_s


def workers_dir(settings: Settings) -> Path:
    return settings.data_dir / WORKERS_DIR


def _path(settings: Settings, worker_id: str) -> Path:
    # Worker ids name hosts; a hash keeps odd characters out of file names.
    return workers_dir(settings) / f"{hashlib.sha256(worker_id.encode()).hexdigest()[:16]}.json"


def write_record(settings: Settings, record: WorkerRecord) -> None:
    """Replace the worker's record at once: a reader never sees half of one."""
    path = _path(settings, record.worker_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(json.dumps(asdict(record)), encoding="utf-8")
    os.replace(partial, path)


def remove_record(settings: Settings, worker_id: str) -> None:
    _path(settings, worker_id).unlink(missing_ok=True)


def read_records(settings: Settings) -> list[WorkerRecord]:
    records = []
    try:
        paths = list(workers_dir(settings).glob("*.json"))
    except OSError:
        return []
    for path in paths:
        try:
            records.append(WorkerRecord(**json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, ValueError, TypeError):
            continue  # removed meanwhile, or not one of ours
    return records


def alive_workers(settings: Settings, *, now: float | None = None) -> list[WorkerRecord]:
    now = time.time() if now is None else now
    return [r for r in read_records(settings) if r.alive(now=now, lease_s=settings.lease_s)]


def prune_records(settings: Settings, *, older_than_s: float) -> int:
    """Remove the records of workers dead for `older_than_s` (killed, never cleaned up)."""
    cutoff, removed = time.time() - older_than_s, 0
    for record in read_records(settings):
        if record.beat_at < cutoff:
            remove_record(settings, record.worker_id)
            removed += 1
    return removed
