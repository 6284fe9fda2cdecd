"""Where a job's files live under TUNER_DATA_DIR; paths come from ids the database issued.

jobs/<job id>/keras_tuner/   KerasTuner's project directory (what resume reloads)
jobs/<job id>/best_model.keras
jobs/<job id>/best_model.saved_model.tar.gz, best_model.onnx   the same model, other formats
jobs/<job id>/model_card.json, model_card.md   what the model is, from what, how good
jobs/<job id>/best_trial/   the best trial's model files and card, when the job's model
                            (best_model.*) is its ensemble (GET /jobs/{id}/model?source=trial)
jobs/<job id>/tensorboard/   one subdirectory per trial, when TensorBoard is on
jobs/<job id>/trial_models/<trial id>.keras   each Pareto-front trial's model (multi-objective)
"""

from __future__ import annotations

import os
from pathlib import Path

from app.settings import Settings

BEST_MODEL_FILE = "best_model.keras"
# The best model in each downloadable format (GET /jobs/{id}/model?format=), and its card.
MODEL_FILES = {
    "keras": BEST_MODEL_FILE,
    "saved_model": "best_model.saved_model.tar.gz",
    "onnx": "best_model.onnx",
}
MODEL_CARD_FILE = "model_card.json"
MODEL_CARD_MARKDOWN = "model_card.md"
TENSORBOARD_DIR = "tensorboard"
TRIAL_MODELS_DIR = "trial_models"
BEST_TRIAL_DIR = "best_trial"
KERAS_TUNER_PROJECT = "keras_tuner"


def job_dir(settings: Settings, job_id: str) -> Path:
    if not job_id.isalnum():  # ids are uuid hex; anything else never reaches the disk
        raise ValueError(f"not a job id: {job_id!r}")
    return settings.jobs_dir / job_id


def best_model_path(settings: Settings, job_id: str) -> Path:
    return job_dir(settings, job_id) / BEST_MODEL_FILE


def model_file_path(settings: Settings, job_id: str, model_format: str) -> Path:
    return job_dir(settings, job_id) / MODEL_FILES[model_format]


def best_trial_file(settings: Settings, job_id: str, name: str = BEST_MODEL_FILE) -> Path:
    """File `name` (a model format's, or the card) of the best single trial: in best_trial/
    when the job's model is its ensemble, else the job's own (the best trial's)."""
    kept = job_dir(settings, job_id) / BEST_TRIAL_DIR
    directory = kept if (kept / BEST_MODEL_FILE).is_file() else job_dir(settings, job_id)
    return directory / name


def trial_model_path(settings: Settings, job_id: str, trial_id: str) -> Path:
    if not trial_id.isalnum():  # KerasTuner's trial ids are digits
        raise ValueError(f"not a trial id: {trial_id!r}")
    return job_dir(settings, job_id) / TRIAL_MODELS_DIR / f"{trial_id}.keras"


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
