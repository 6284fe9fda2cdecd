"""A multi-objective job keeps the model of every trial on its Pareto front.

Each is one `.keras` file that takes raw rows, like the best model, under
`trial_models/<trial id>.keras` (app.store.job_files.trial_model_path), served by
GET /jobs/{id}/trials/{trial_id}/model and POST /jobs/{id}/predict?trial_id=. A trial
that joins the front is exported (from its checkpoint, which checkpoint pruning keeps
while it is on the front); one that leaves it loses its file.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import keras

from app.store.job_files import TRIAL_MODELS_DIR

logger = logging.getLogger(__name__)


def export_trial_model(tuner: Any, preprocessor: keras.Model, trial: Any, path: Path) -> None:
    """Preprocessing + the trial's network at its best epoch, as one .keras file (written
    whole, then moved into place: a download never sees half a file)."""
    trained = tuner.load_model(trial)
    network = keras.models.clone_model(trained)  # uncompiled: no optimizer state to warn about
    network.set_weights(trained.get_weights())
    raw_inputs = preprocessor.input
    full = keras.Model(
        raw_inputs, network(preprocessor(raw_inputs)), name=f"trial_{trial.trial_id}"
    )
    partial = path.with_name(f".{path.name}.partial.keras")
    full.save(partial)
    os.replace(partial, path)


def keep_front_models(
    tuner: Any, preprocessor: keras.Model, job_directory: Path, front: set[str]
) -> None:
    """Export the front's models not yet on disk; delete those of trials no longer on it."""
    models = job_directory / TRIAL_MODELS_DIR
    if not front and not models.is_dir():
        return
    models.mkdir(exist_ok=True)
    for trial_id in sorted(front):
        path = models / f"{trial_id}.keras"
        if not path.exists():
            export_trial_model(tuner, preprocessor, tuner.oracle.trials[trial_id], path)
    for path in models.glob("*.keras"):
        if path.stem not in front:
            path.unlink(missing_ok=True)
    logger.debug("front models kept", extra={"front": sorted(front)})
