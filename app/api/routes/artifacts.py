"""What a search leaves: the best model (each format), its card, predictions, TensorBoard logs."""

from __future__ import annotations

import json
import tarfile
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response
from starlette.background import BackgroundTask

from app.api.auth import OwnerDep
from app.api.deps import SessionDep, SettingsDep
from app.api.predictor import Predictor
from app.api.problems import problem_responses
from app.errors import ProblemError
from app.search.prediction import PredictRequest, PredictResponse, shape_predictions, validate_rows
from app.store.job_files import (
    MODEL_CARD_FILE,
    MODEL_CARD_MARKDOWN,
    best_model_path,
    job_dir,
    model_file_path,
    tensorboard_dir,
)
from app.store.models import JobStatus
from app.store.reads import get_dataset, get_job
from app.store.trial_models import trial_model_file

router = APIRouter(prefix="/jobs", tags=["models"])


ModelFormat = Literal["keras", "saved_model", "onnx"]
CardFormat = Literal["json", "md"]
MODEL_DOWNLOADS: dict[str, tuple[str, str]] = {  # format -> (media type, file name suffix)
    "keras": ("application/octet-stream", "best.keras"),
    "saved_model": ("application/gzip", "saved_model.tar.gz"),
    "onnx": ("application/octet-stream", "best.onnx"),
}


@router.get(
    "/{job_id}/model",
    response_class=FileResponse,
    responses={
        200: {"content": {"application/octet-stream": {}, "application/gzip": {}}},
        **problem_responses(404, 422),
    },
)
def download_model(
    session: SessionDep,
    settings: SettingsDep,
    owner: OwnerDep,
    job_id: str,
    model_format: Annotated[
        ModelFormat,
        Query(
            alias="format",
            description="`keras`: a .keras file plain Keras loads in safe mode; "
            "`saved_model`: a .tar.gz of best_model/1/, a TensorFlow SavedModel that "
            "TensorFlow Serving loads as is (signature `serving_default`); `onnx`: an ONNX "
            "model for onnxruntime (the model card gives its opset). All take raw rows.",
        ),
    ] = "keras",
) -> FileResponse:
    """The best model, preprocessing inside, as a .keras file, a SavedModel or ONNX."""
    job = get_job(session.connection(), job_id, owner)
    if not best_model_path(settings, job.id).is_file():
        raise ProblemError(404, f"job {job_id!r} has no model yet", title="No model")
    path = model_file_path(settings, job.id, model_format)
    if not path.is_file():
        raise ProblemError(
            404,
            f"job {job_id!r} has no {model_format} model: its export failed or has not been "
            "written yet (the model card lists the formats written)",
            title="No model in this format",
        )
    media_type, suffix = MODEL_DOWNLOADS[model_format]
    return FileResponse(path, media_type=media_type, filename=f"{job.id}-{suffix}")


@router.get(
    "/{job_id}/model_card",
    response_model=dict[str, Any],
    responses={
        200: {"content": {"text/markdown": {"schema": {"type": "string"}}}},
        **problem_responses(404, 422),
    },
)
def model_card(
    session: SessionDep,
    settings: SettingsDep,
    owner: OwnerDep,
    job_id: str,
    card_format: Annotated[
        CardFormat, Query(alias="format", description="`json` (default) or `md` (Markdown)")
    ] = "json",
) -> Any:
    """The best model's card: dataset, preprocessing, hyperparameters, scores, versions."""
    job = get_job(session.connection(), job_id, owner)
    directory = job_dir(settings, job.id)
    name = MODEL_CARD_FILE if card_format == "json" else MODEL_CARD_MARKDOWN
    try:
        text = (directory / name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProblemError(
            404,
            f"job {job_id!r} has no model card yet (it is written with the best model)",
            title="No model card",
        ) from None
    if card_format == "md":
        return Response(text, media_type="text/markdown; charset=utf-8")
    return json.loads(text)


@router.post(
    "/{job_id}/predict",
    response_model=PredictResponse,
    response_model_exclude_none=True,
    responses=problem_responses(400, 404, 409),
)
def predict(
    session: SessionDep,
    settings: SettingsDep,
    owner: OwnerDep,
    request: Request,
    job_id: str,
    body: PredictRequest,
    trial_id: Annotated[
        str | None,
        Query(
            description="predict with this trial's model instead of the best: a Pareto-front "
            "trial of a multi-objective job (GET /jobs/{id}/pareto), or the best trial"
        ),
    ] = None,
) -> PredictResponse:
    """Predictions of the best model (or of `trial_id`'s) for raw rows (the job must have
    succeeded)."""
    job = get_job(session.connection(), job_id, owner)
    if job.status != JobStatus.SUCCEEDED:
        raise ProblemError(
            409,
            f"job {job_id!r} is {job.status}; predictions need a succeeded job",
            title="Job not succeeded",
        )
    if trial_id is not None:
        path = trial_model_file(session.connection(), settings, job, trial_id, owner)
    else:
        path = best_model_path(settings, job.id)
    if not path.is_file():
        raise ProblemError(404, f"job {job_id!r} has no model", title="No model")
    dataset = get_dataset(session, job.dataset_id, owner)
    rows = validate_rows(dataset, body.rows)
    predictor: Predictor = request.app.state.predictor
    outputs = predictor.predict(path, dataset.columns, rows)
    return shape_predictions(dataset, outputs)


@router.get(
    "/{job_id}/tensorboard",
    response_class=FileResponse,
    responses={200: {"content": {"application/gzip": {}}}, **problem_responses(404)},
)
def download_tensorboard(
    session: SessionDep, settings: SettingsDep, owner: OwnerDep, job_id: str
) -> FileResponse:
    """The job's TensorBoard logs (one run per trial, with HParams) as a .tar.gz."""
    job = get_job(session.connection(), job_id, owner)
    logs = tensorboard_dir(settings, job.id)
    if not logs.is_dir():
        raise ProblemError(
            404,
            f"job {job_id!r} has no TensorBoard logs (submit with callbacks.tensorboard: true)",
            title="No TensorBoard logs",
        )
    with tempfile.NamedTemporaryFile(suffix=".tar.gz", delete=False) as archive:
        with tarfile.open(fileobj=archive, mode="w:gz") as tar:
            tar.add(logs, arcname=f"{job.id}-tensorboard")
    path = Path(archive.name)
    return FileResponse(
        path,
        media_type="application/gzip",
        filename=f"{job.id}-tensorboard.tar.gz",
        background=BackgroundTask(path.unlink, missing_ok=True),
    )
