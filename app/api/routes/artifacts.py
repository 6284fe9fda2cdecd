"""What a search leaves: the job's model (each format), its card, predictions, TensorBoard
logs, and the model of any trial that kept one.

The job's model is its best trial's, or its ensemble of trials when that scored higher
(job.ensemble.used); `?source=trial` asks for the best trial's either way."""

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
from app.api.predictor import (
    PREDICTIONS_BUSY,
    ModelAndDataset,
    Predictor,
    prediction_response,
)
from app.api.problems import problem_responses
from app.errors import ProblemError
from app.search.prediction import PredictRequest, PredictResponse
from app.store.job_files import (
    MODEL_CARD_FILE,
    MODEL_CARD_MARKDOWN,
    MODEL_FILES,
    best_model_path,
    best_trial_file,
    job_dir,
    model_file_path,
    tensorboard_dir,
)
from app.store.reads import get_dataset, get_job, trial_model_file
from app.store.statuses import JobStatus

router = APIRouter(prefix="/jobs", tags=["models"])


ModelFormat = Literal["keras", "saved_model", "onnx"]
CardFormat = Literal["json", "md"]
ModelSource = Literal["job", "trial"]
SourceQuery = Annotated[
    ModelSource,
    Query(
        description="`job` (default): the job's model, its ensemble when job.ensemble.used; "
        "`trial`: the best single trial's model"
    ),
]
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
    source: SourceQuery = "job",
) -> FileResponse:
    """The job's model, preprocessing inside, as a .keras file, a SavedModel or ONNX."""
    job = get_job(session.connection(), job_id, owner)
    if not best_model_path(settings, job.id).is_file():
        raise ProblemError(404, f"job {job_id!r} has no model yet", title="No model")
    if source == "trial":
        path = best_trial_file(settings, job.id, MODEL_FILES[model_format])
    else:
        path = model_file_path(settings, job.id, model_format)
    if not path.is_file():
        if not JobStatus(job.status).is_finished():
            # While the search may still replace its best model, that model is kept as a
            # .keras file only; the formats converted from it come with the search's end.
            raise ProblemError(
                404,
                f"job {job_id!r} is still searching: its best model so far is kept as .keras "
                f"only, and {model_format} is written when the search ends",
                title="No model in this format yet",
            )
        raise ProblemError(
            404,
            f"job {job_id!r} has no {model_format} model: its export failed (the model card "
            "lists the formats written)",
            title="No model in this format",
        )
    media_type, suffix = MODEL_DOWNLOADS[model_format]
    # The best trial's own file is named apart from the job's model (its ensemble, maybe).
    name = f"{job.id}-{'trial-' if source == 'trial' else ''}{suffix}"
    return FileResponse(path, media_type=media_type, filename=name)


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
    source: SourceQuery = "job",
) -> Any:
    """The job's model's card: dataset, preprocessing, hyperparameters (or the ensemble's
    members and weights), scores, versions."""
    job = get_job(session.connection(), job_id, owner)
    name = MODEL_CARD_FILE if card_format == "json" else MODEL_CARD_MARKDOWN
    if source == "trial":
        path = best_trial_file(settings, job.id, name)
    else:
        path = job_dir(settings, job.id) / name
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProblemError(
            404,
            f"job {job_id!r} has no model card yet (it is written with the best model)",
            title="No model card",
        ) from None
    if card_format == "md":
        return Response(text, media_type="text/markdown; charset=utf-8")
    return json.loads(text)


@router.get(
    "/{job_id}/trials/{trial_id}/model",
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {}}}, **problem_responses(404)},
)
def download_trial_model(
    session: SessionDep, settings: SettingsDep, owner: OwnerDep, job_id: str, trial_id: str
) -> FileResponse:
    """One trial's model as a .keras file that takes raw rows: each Pareto-front trial of a
    multi-objective job keeps one, and the best trial of any job."""
    db = session.connection()
    job = get_job(db, job_id, owner)
    path = trial_model_file(db, settings, job, trial_id, owner)
    return FileResponse(
        path, media_type="application/octet-stream", filename=f"{job.id}-trial-{trial_id}.keras"
    )


@router.post(
    "/{job_id}/predict",
    response_model=PredictResponse,
    response_model_exclude_none=True,
    responses={**problem_responses(400, 404, 409), 429: PREDICTIONS_BUSY},
)
async def predict(
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
    source: SourceQuery = "job",
) -> Response:
    """Predictions of the job's model (or of the best trial's, or of `trial_id`'s) for raw
    rows (the job must have succeeded), with `warnings` for what the model cannot know (a
    category never seen in training)."""

    def model_and_dataset() -> ModelAndDataset:
        job = get_job(session.connection(), job_id, owner)
        if job.status != JobStatus.SUCCEEDED:
            raise ProblemError(
                409,
                f"job {job_id!r} is {job.status}; predictions need a succeeded job",
                title="Job not succeeded",
            )
        if trial_id is not None:
            path = trial_model_file(session.connection(), settings, job, trial_id, owner)
        elif source == "trial":
            path = best_trial_file(settings, job.id)
        else:
            path = best_model_path(settings, job.id)
        if not path.is_file():
            raise ProblemError(404, f"job {job_id!r} has no model", title="No model")
        dataset = get_dataset(session, job.dataset_id, owner)
        # The snapshot ends before the wait for the model (seconds, when the prediction
        # process starts): a transaction idle that long is ended by the server
        # (app.store.backend.network_options). Nothing is expired (expire_on_commit=False).
        session.commit()
        return path, dataset

    predictor: Predictor = request.app.state.predictor
    return await prediction_response(predictor, owner, model_and_dataset, body.rows)


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
