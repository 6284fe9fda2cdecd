"""The best model in every downloadable format, written together each time it changes.

- `.keras`: the functional model as it is (inputs named as `data.input_names` says);
  its imputation is built-in Keras operations (tuner_jobs.search.layers), so plain Keras
  loads it with `safe_mode=True`.
- SavedModel, as a `.tar.gz` of `best_model/1/` (TensorFlow Serving's layout: a model
  base path holding numbered versions), from Keras's own `model.export()`: a
  `serving_default` signature taking one [batch, 1] tensor per column and giving
  `output_0`; the model card rides along in `1/assets.extra/`, where Serving ignores it.
- ONNX, converted by tf2onnx (Keras's own ONNX export calls tf2onnx too, but through
  `from_function`, which drops StringLookup's tables; `from_keras` keeps them as
  ONNX-ML CategoryMapper nodes) at opset ONNX_OPSET.

SavedModel signatures and ONNX inputs must be identifiers, so those two take the
`serving_names` of the inputs ("age (years)" -> "age_years"); the card lists both names.
Each file is written beside its final name and moved into place after all are written,
so a download never gets a half-written file, and a format that could not be written
is removed rather than left behind from an older best trial.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import keras

from app.store.claims import ClaimLost
from app.store.job_files import MODEL_CARD_FILE, MODEL_CARD_MARKDOWN, MODEL_FILES
from tuner_jobs.search.model_card import CardContext, build_card, card_json, card_markdown

logger = logging.getLogger(__name__)

ONNX_OPSET = 17
SAVED_MODEL_BASE = "best_model"  # the archive's top folder: TensorFlow Serving's base path
SAVED_MODEL_VERSION = "1"
SIGNATURE = "serving_default"
OUTPUT_NAME = "output_0"  # what Keras's SavedModel export calls a single output
CARD_MEMBERS = (MODEL_CARD_FILE, MODEL_CARD_MARKDOWN)


def serving_names(names: list[str]) -> dict[str, str]:
    """Keras input name -> an identifier for SavedModel signatures and ONNX inputs (unique)."""
    out: dict[str, str] = {}
    taken: set[str] = set()
    for name in names:
        base = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_") or "column"
        if base[0].isdigit():
            base = f"x_{base}"
        candidate, n = base, 1
        while candidate in taken:
            n += 1
            candidate = f"{base}_{n}"
        taken.add(candidate)
        out[name] = candidate
    return out


def serving_model(model: keras.Model) -> tuple[keras.Model, dict[str, str]]:
    """`model` behind inputs named by `serving_names`, with its output named OUTPUT_NAME."""
    names = serving_names(list(model.input))
    inputs = {
        names[key]: keras.Input(shape=(1,), dtype=tensor.dtype, name=names[key])
        for key, tensor in model.input.items()
    }
    outputs = model({key: inputs[names[key]] for key in model.input})
    outputs = keras.layers.Identity(name=OUTPUT_NAME)(outputs)
    return keras.Model(inputs, outputs, name="serving"), names


def _write_saved_model(model: keras.Model, archive: Path, card: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory(dir=archive.parent, prefix=".saved_model.") as tmp:
        version = Path(tmp) / SAVED_MODEL_VERSION
        model.export(str(version), format="tf_saved_model", verbose=False)
        extra = version / "assets.extra"
        extra.mkdir(exist_ok=True)
        for name, text in card.items():
            (extra / name).write_text(text, encoding="utf-8")
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(version, arcname=f"{SAVED_MODEL_BASE}/{SAVED_MODEL_VERSION}")


def _write_onnx(model: keras.Model, path: Path) -> None:
    import onnx
    import tensorflow as tf
    import tf2onnx

    signature = [
        {
            key: tf.TensorSpec((None, 1), tensor.dtype, name=key)
            for key, tensor in model.input.items()
        }
    ]
    # tf2onnx logs each node it folds at INFO; its real failures come at ERROR.
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=signature, opset=ONNX_OPSET)
    # from_keras goes on past a node it cannot convert and leaves it in the graph, as a
    # TensorFlow op no ONNX runtime has: the checker refuses such a model here, not later.
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(path))


def _partial(path: Path) -> Path:
    return path.with_name(f".{path.name}.partial")


def export_model_files(
    full: keras.Model,
    keras_path: Path,
    trial_id: str | None,
    context: CardContext | None,
    *,
    ensemble: dict[str, Any] | None = None,
    interim: bool = False,
) -> dict[str, dict[str, Any]]:
    """Write `full` (raw rows in) as every format, and its card when `context` is given;
    returns the formats written (format -> file and details). `ensemble`: the job's
    ensemble (tuner_jobs.search.ensemble_model), which `full` is, instead of a trial.

    `interim`: a best model the search may still replace gets its `.keras` file and card
    only; converting it to ONNX and SavedModel (most of an export's time) waits for the
    search's end, when the model that stays is exported whole (complete_export)."""
    directory = keras_path.parent
    started = time.monotonic()
    serving, names = serving_model(full)
    formats: dict[str, dict[str, Any]] = {}
    ready: dict[Path, Path] = {}  # partial -> final
    keras_partial = keras_path.with_name(f".{keras_path.name}.partial.keras")
    full.save(keras_partial)
    ready[keras_partial] = keras_path
    formats["keras"] = {"file": keras_path.name, "safe_mode": True}
    if interim:
        # The card says so: the other formats come with the search's end.
        formats["keras"]["interim"] = True
        card_files = _card_files(context, trial_id, names, formats, ensemble)
        return _finish_export(ready, directory, card_files, formats, trial_id, started)
    onnx_path = directory / MODEL_FILES["onnx"]
    try:
        _write_onnx(serving, _partial(onnx_path))
        ready[_partial(onnx_path)] = onnx_path
        formats["onnx"] = {"file": onnx_path.name, "opset": ONNX_OPSET, "output": OUTPUT_NAME}
    except Exception:  # a model tf2onnx cannot convert keeps its other formats
        logger.warning("ONNX export failed", exc_info=True, extra={"trial_id": trial_id})
        _partial(onnx_path).unlink(missing_ok=True)
    saved = directory / MODEL_FILES["saved_model"]
    formats["saved_model"] = {
        "file": saved.name,
        "layout": f"{SAVED_MODEL_BASE}/{SAVED_MODEL_VERSION}/",
        "signature": SIGNATURE,
        "output": OUTPUT_NAME,
    }
    card_files = _card_files(context, trial_id, names, formats, ensemble)
    try:
        _write_saved_model(serving, _partial(saved), card_files)
        ready[_partial(saved)] = saved
    except Exception:
        formats.pop("saved_model")
        _partial(saved).unlink(missing_ok=True)
        logger.warning("SavedModel export failed", exc_info=True, extra={"trial_id": trial_id})
        card_files = _card_files(context, trial_id, names, formats, ensemble)
    return _finish_export(ready, directory, card_files, formats, trial_id, started)


def _finish_export(
    ready: dict[Path, Path],
    directory: Path,
    card_files: dict[str, str],
    formats: dict[str, dict[str, Any]],
    trial_id: str | None,
    started: float,
) -> dict[str, dict[str, Any]]:
    for name, text in card_files.items():
        _partial(directory / name).write_text(text, encoding="utf-8")
        ready[_partial(directory / name)] = directory / name
    _install(ready, directory)
    logger.info(
        "best model exported",
        extra={
            "trial_id": trial_id,
            "formats": sorted(formats),
            "seconds": round(time.monotonic() - started, 2),
        },
    )
    return formats


def _card_files(
    context: CardContext | None,
    trial_id: str | None,
    names: dict[str, str],
    formats: dict[str, dict[str, Any]],
    ensemble: dict[str, Any] | None,
) -> dict[str, str]:
    if context is None:
        return {}
    try:
        card = build_card(context, trial_id, serving=names, formats=formats, ensemble=ensemble)
    except ClaimLost:
        raise  # the database was away past the lease: the job may be another's now
    except Exception:  # a card that cannot be written never costs the model
        logger.warning("model card failed", exc_info=True, extra={"trial_id": trial_id})
        return {}
    return {MODEL_CARD_FILE: card_json(card), MODEL_CARD_MARKDOWN: card_markdown(card)}


def _install(ready: dict[Path, Path], directory: Path) -> None:
    """Move the new files into place; remove the formats (and card) not written this time,
    which would describe an older model."""
    finals = set(ready.values())
    for name in (*MODEL_FILES.values(), *CARD_MEMBERS):
        stale = directory / name
        if stale not in finals:
            stale.unlink(missing_ok=True)
    for partial, final in ready.items():
        os.replace(partial, final)


def exported_trial(keras_path: Path) -> str | None:
    """The trial whose model is exported beside `keras_path`, as its card says (None without
    one, or when the model there is an ensemble). The card is moved into place after
    every format, so it never names a trial whose files are not all there."""
    card = _exported_card(keras_path)
    trial_id = None if card is None else card.get("trial_id")
    return trial_id if isinstance(trial_id, str) else None


def exported_whole(keras_path: Path) -> bool:
    """Whether the model beside `keras_path` was exported in every format it could be (an
    interim export writes its `.keras` file only), as its card says."""
    card = _exported_card(keras_path)
    formats = None if card is None else card.get("formats")
    if not isinstance(formats, dict) or not isinstance(formats.get("keras"), dict):
        return False
    return not formats["keras"].get("interim", False)


def _exported_card(keras_path: Path) -> dict[str, Any] | None:
    if not keras_path.is_file():
        return None
    try:
        card = json.loads((keras_path.parent / MODEL_CARD_FILE).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return card if isinstance(card, dict) else None


def finish_model_card(tuner: Any, keras_path: Path) -> None:
    """At the search's end: rewrite the exported model's card with what the end added (the
    test score, the baselines), beside the model and inside the SavedModel archive."""
    context = getattr(tuner, "export_context", None)
    card_path = keras_path.parent / MODEL_CARD_FILE
    if context is None or not card_path.is_file():
        return
    try:
        _refresh_card(keras_path.parent, json.loads(card_path.read_text("utf-8")), context)
    except Exception:  # the job keeps the card written with the model
        logger.warning("model card refresh failed", exc_info=True)


def _refresh_card(directory: Path, previous: dict[str, Any], context: CardContext) -> None:
    names = {c["keras_input"]: c["serving_input"] for c in previous["dataset"]["columns"]}
    # The card on disk is the exported model's: refresh that trial's (or that ensemble's),
    # whatever ranks first.
    card = build_card(
        context,
        previous["trial_id"],
        serving=names,
        formats=previous["formats"],
        ensemble=previous.get("ensemble"),
    )
    files = {MODEL_CARD_FILE: card_json(card), MODEL_CARD_MARKDOWN: card_markdown(card)}
    ready: dict[Path, Path] = {}
    archive = directory / MODEL_FILES["saved_model"]
    if archive.is_file():
        _replace_card_in_archive(archive, _partial(archive), files)
        ready[_partial(archive)] = archive
    for name, text in files.items():
        _partial(directory / name).write_text(text, encoding="utf-8")
        ready[_partial(directory / name)] = directory / name
    for partial, final in ready.items():
        os.replace(partial, final)


def _replace_card_in_archive(archive: Path, out: Path, files: dict[str, str]) -> None:
    extra = f"{SAVED_MODEL_BASE}/{SAVED_MODEL_VERSION}/assets.extra"
    replaced = {f"{extra}/{name}" for name in files}
    with tarfile.open(archive, "r:gz") as old, tarfile.open(out, "w:gz") as new:
        for member in old.getmembers():
            if member.name in replaced:
                continue
            new.addfile(member, old.extractfile(member) if member.isfile() else None)
        for name, text in files.items():
            data = text.encode("utf-8")
            info = tarfile.TarInfo(f"{extra}/{name}")
            info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
            new.addfile(info, io.BytesIO(data))
