"""When a search process hands its search over to a fresh one (TensorFlow-free, testable).

KerasTuner with TensorFlow leaks a few MB per trial even with clear_session, so a
long search would grow without bound in one process.
"""

from __future__ import annotations

import os

from app.settings import Settings


def resident_mb() -> float:
    """This process's resident memory now (not its peak)."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / (1 << 20)


def recycle_reason(trials_here: int, rss_mb: float, settings: Settings) -> str | None:
    """Why this process should stop after its latest trial, or None to go on."""
    if trials_here >= settings.recycle_trials:
        return f"recycle after {trials_here} trial(s) ({rss_mb:.0f} MB)"
    if rss_mb > settings.recycle_rss_mb:
        return (
            f"recycle at {rss_mb:.0f} MB, over TUNER_RECYCLE_RSS_MB={settings.recycle_rss_mb}, "
            f"after {trials_here} trial(s)"
        )
    return None
