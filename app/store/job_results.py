"""What the end of a search writes to its job: the baselines' scores, the best model's test
metrics, the ensemble, and the verdict (tuner_jobs.search.evaluation computes them).

The same rules as app.store.queue: the session is a keyword argument, nothing here commits;
the caller fences the write on its claim (app.store.search_gateway).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from app.store.models import Job


def record_end_of_search(
    *,
    session: Session,
    job_id: str,
    baselines: dict[str, Any],
    test_metrics: dict[str, Any] | None,
    ensemble: dict[str, Any] | None,
    verdict: str | None,
) -> None:
    """Written whole each time: a resumed search that finds its oracle done writes the
    same again."""
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(baselines=baselines, test_metrics=test_metrics, ensemble=ensemble, verdict=verdict)
    )
