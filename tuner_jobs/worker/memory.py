"""How much memory a search process held, and how much it may hold: what a SIGKILL from the
kernel's OOM killer leaves to go on (tuner_jobs.worker.outcomes.death), and what the
worker's own cap (TUNER_SEARCH_RSS_CAP_MB) watches."""

from __future__ import annotations

import resource
from pathlib import Path

# cgroup v2, then v1: a container's memory limit (absent or "max" when there is none).
CGROUP_LIMITS = (
    Path("/sys/fs/cgroup/memory.max"),
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
)


def _status_kb(pid: int, field: str) -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # gone, or not Linux
        return None
    for line in text.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return None  # a zombie has no memory lines


def rss_now(pid: int) -> int | None:
    """The process's resident set (VmRSS) in bytes, while it is alive."""
    kb = _status_kb(pid, "VmRSS")
    return None if kb is None else kb * 1024


def rss_high_water(pid: int) -> int | None:
    """The process's peak resident set (VmHWM) in bytes, while it is alive."""
    kb = _status_kb(pid, "VmHWM")
    return None if kb is None else kb * 1024


def children_peak_rss() -> int:
    """The largest peak RSS of any child reaped so far, in bytes (Linux reports KB)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024


# cgroup v2, then v1: how many processes the kernel's OOM killer has killed in this
# container (v1 reports it since Linux 4.13).
CGROUP_OOM_EVENTS = (
    Path("/sys/fs/cgroup/memory.events"),
    Path("/sys/fs/cgroup/memory/memory.oom_control"),
)


def oom_kills() -> int | None:
    """The container's count of out-of-memory kills; None where the kernel does not say."""
    for path in CGROUP_OOM_EVENTS:
        try:
            text = path.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if name == "oom_kill" and value.strip().isdigit():
                return int(value)
    return None


def memory_limit_bytes() -> int | None:
    """The tightest of the machine's memory, its cgroup's limit and RLIMIT_AS."""
    limits: list[int] = []
    total_kb = _status_kb_meminfo()
    if total_kb is not None:
        limits.append(total_kb * 1024)
    for path in CGROUP_LIMITS:
        try:
            value = path.read_text().strip()
        except OSError:
            continue
        if value.isdigit():
            limits.append(int(value))
    soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        limits.append(soft)
    return min(limits) if limits else None


def _status_kb_meminfo() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None
