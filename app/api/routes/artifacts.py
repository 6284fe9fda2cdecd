"""What a finished search leaves behind: the best model, predictions, TensorBoard logs."""

from __future__ import annotations

import tarfile
import tempfile
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from app.api.auth import OwnerDep
from app.api.deps import SessionDep, SettingsDep
from app.api.predictor import Predictor
from app.api.problems import problem_responses
from app.errors import ProblemError
from app.search.prediction import PredictRequest, PredictResponse, shape_predictions, validate_rows
from app.store.job_files import best_model_path, tensorboard_dir
from app.store.models import JobStatus
from app.store.reads import get_dataset, get_job

router = APIRouter(prefix="/jobs", tags=["models"])


@router.get(
    "/{job_id}/model",
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {}}}, **problem_responses(404)},
)
def download_model(
    session: SessionDep, settings: SettingsDep, owner: OwnerDep, job_id: str
) -> FileResponse:
    """The best model as a .keras file that takes raw rows (preprocessing inside)."""
    job = get_job(session.connection(), job_id, owner)
    path = best_model_path(settings, job.id)
    if not path.is_file():
        raise ProblemError(404, f"job {job_id!r} has no model yet", title="No model")
    return FileResponse(
        path, media_type="application/octet-stream", filename=f"{job.id}-best.keras"
    )


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
) -> PredictResponse:
    """Predictions of the best model for raw rows (the job must have succeeded)."""
    job = get_job(session.connection(), job_id, owner)
    if job.status != JobStatus.SUCCEEDED:
        raise ProblemError(
            409,
            f"job {job_id!r} is {job.status}; predictions need a succeeded job",
            title="Job not succeeded",
        )
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
