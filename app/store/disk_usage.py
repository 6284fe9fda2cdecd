"""A job's disk usage for its JSON, walked at most once per few seconds per job.

`disk_bytes` walks the job's directory: KerasTuner keeps a subdirectory per trial, so
the walk grows with the trials (a 10,000-trial job: tens of thousands of stat calls)
and every poll of GET /jobs/{id} paid it. The figure is informational; a few seconds
of staleness cost nobody anything, a walk per request costs every client latency.
The job's status is part of the key, so a job that just finished is walked afresh.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from pathlib import Path

from app.store.job_files import directory_bytes

TTL_S = 5.0
MAX_JOBS = 10_000

_cache: OrderedDict[tuple[Path, str], tuple[float, int]] = OrderedDict()
_lock = threading.Lock()


def cached_directory_bytes(path: Path, status: str) -> int:
    key = (path, status)
    now = time.monotonic()
    with _lock:
        hit = _cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
    size = directory_bytes(path)  # outside the lock: walks of different jobs overlap
    with _lock:
        _cache[key] = (now + TTL_S, size)
        _cache.move_to_end(key)
        while len(_cache) > MAX_JOBS:
            _cache.popitem(last=False)
    return size
