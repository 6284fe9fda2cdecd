"""Where a job's files live under TUNER_DATA_DIR; paths come from ids the database issued.

jobs/<job id>/keras_tuner/   KerasTuner's project directory (what resume reloads)
jobs/<job id>/best_model.keras
jobs/<job id>/tensorboard/   one subdirectory per trial, when TensorBoard is on
"""

from __future__ import annotations

import os
from pathlib import Path

from app.settings import Settings

BEST_MODEL_FILE = "best_model.keras"
TENSORBOARD_DIR = "tensorboard"
KERAS_TUNER_PROJECT = "keras_tuner"


def job_dir(settings: Settings, job_id: str) -> Path:
    if not job_id.isalnum():  # ids are uuid hex; anything else never reaches the disk
        raise ValueError(f"not a job id: {job_id!r}")
    return settings.jobs_dir / job_id


def best_model_path(settings: Settings, job_id: str) -> Path:
    return job_dir(settings, job_id) / BEST_MODEL_FILE


def tensorboard_dir(settings: Settings, job_id: str) -> Path:
    return job_dir(settings, job_id) / TENSORBOARD_DIR


def directory_bytes(path: Path) -> int:
    """Bytes of every file under `path` (0 when it does not exist)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except OSError:  # removed while we walked (checkpoint pruning)
                continue
    return total
