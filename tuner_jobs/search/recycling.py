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


# Trials this process has run, over every job it ran: a search process that ended its job
# cleanly runs its worker's next one (child.run_spare), and TensorFlow's leak is the
# process's, not the job's.
_trials_run = 0


def count_trial() -> int:
    """One more trial run in this process; returns how many it has run in all."""
    global _trials_run
    _trials_run += 1
    return _trials_run


def may_run_another_job(settings: Settings) -> bool:
    """Whether this process, its job ended, may take its worker's next job: not yet at the
    thresholds that recycle a process after a trial (at them, it would hand the next job's
    search over to a fresh process after its first trial)."""
    return recycle_reason(_trials_run, resident_mb(), settings) is None


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
