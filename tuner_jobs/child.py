"""Entry point of the spawned process that runs one search (TensorFlow lives only here)."""

from __future__ import annotations

import os
import traceback
from multiprocessing.connection import Connection
from typing import Any

from sqlalchemy.orm import Session

from app.db import make_engine
from app.logs import configure_logging
from app.models import Dataset, Job
from app.overfitting import overfitting_patience
from app.queue import Claim
from app.settings import Settings

# Outcomes the child reports to its supervisor over the pipe.
SUCCEEDED, STOPPED, FAILED, LEASE_LOST = "succeeded", "stopped", "failed", "lease_lost"
RECYCLE = "recycle"  # this process is done; the search goes on in a fresh one


class StopWhen:
    """Stop at the next epoch boundary when the supervisor says so, or when it has died."""

    def __init__(self, event: Any) -> None:
        self.event = event
        self.parent = os.getppid()

    def is_set(self) -> bool:
        return self.event.is_set() or os.getppid() != self.parent


def run_child(payload: dict[str, Any], conn: Connection, stop_event: Any) -> None:
    configure_logging()
    # Training yields to the API when they share a machine.
    os.nice(payload.get("nice", 5))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    settings = Settings(**payload["settings"])
    claim = Claim(**payload["claim"])
    engine = make_engine(
        settings.database_url,
        application_name="worker",
        busy_timeout_s=settings.sqlite_busy_timeout_s,
    )
    try:
        # Imported here: the supervisor that spawned us must never load TensorFlow.
        from tuner_jobs.recorder import LeaseLost, TrialRecorder
        from tuner_jobs.runner import run_search
        from tuner_jobs.tuners import RecycleProcess, SearchStopped

        with Session(engine, expire_on_commit=False) as session:
            job = session.get_one(Job, claim.job_id)
            dataset = session.get_one(Dataset, job.dataset_id)
            session.expunge_all()
        try:
            run_search(
                settings=settings,
                job=job,
                dataset=dataset,
                recorder=TrialRecorder(
                    engine,
                    claim,
                    patience=overfitting_patience(job.spec),
                    outage_s=settings.lease_s,
                ),
                stop=StopWhen(stop_event),
            )
            conn.send((SUCCEEDED, None))
        except SearchStopped:
            conn.send((STOPPED, None))
        except RecycleProcess as exc:
            conn.send((RECYCLE, str(exc)))
        except LeaseLost as exc:
            conn.send((LEASE_LOST, str(exc)))
    except Exception as exc:
        traceback.print_exc()
        conn.send((FAILED, f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()
        engine.dispose()
