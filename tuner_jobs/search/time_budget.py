"""A search its time budget stopped still ends as a finished search does.

The supervisor asks a search to stop when the search's part of the job's max_runtime_s
has run out (it cannot say why it asks: a cancel or a shutdown asks the same way). The
search process tells the budget apart itself, from the job's row (app.store.budget), and
then does what a search that ran its planned trials does at its end (the best model
exported, refit, baselines, test score) before it reports STOPPED: the job succeeds with
stop_reason time_budget (tuner_jobs.worker.outcomes) and serves the same kind of model.
That end phase runs in the share of the budget kept for it (ResolvedSpec.search_seconds),
and within the supervisor's stop grace (tuner_jobs.worker.processes.STOP_GRACE_S).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from app.store.budget import search_budget_spent
from tuner_jobs.search.tuners import SearchStopped

logger = logging.getLogger(__name__)

# The supervisor asks at the first heartbeat past the deadline; clocks of two processes
# on one machine agree far better than this.
_SLACK_S = 1.0


def has_completed_trial(tuner: object) -> bool:
    trials = tuner.oracle.trials.values()  # type: ignore[attr-defined]
    return any(t.status == "COMPLETED" for t in trials)


@contextmanager
def finished_if_out_of_time(
    engine: Any, job_id: str, tuner: object, finish: Callable[[], None] | None
) -> Iterator[None]:
    """Run the block; when it stops (SearchStopped) because the budget ran out and a
    trial completed, call `finish` (None: this process does not finish the job, as a
    tuner of a parallel job), then let SearchStopped go on."""
    try:
        yield
    except SearchStopped:
        if (
            finish is not None
            and has_completed_trial(tuner)
            and search_budget_spent(engine, job_id, slack_s=_SLACK_S)
        ):
            logger.info("time budget spent: finishing the search", extra={"job_id": job_id})
            try:
                finish()
            except Exception:  # the job still succeeds, with its best trial's model
                logger.warning("finishing after the time budget failed", exc_info=True)
        raise
