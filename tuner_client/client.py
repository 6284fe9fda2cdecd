"""`Client`: the REST API of tuner-service as Python calls (httpx; no TensorFlow)."""

from __future__ import annotations

import errno
import os
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import quote

import httpx

from tuner_client.errors import (
    JobFailed,
    NotFound,
    WaitTimeout,
    error_from_response,
    error_from_transport,
)
from tuner_client.ids import is_full_id, match_prefix
from tuner_client.progress import JobProgress
from tuner_client.rows import rows_payload

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_PORT = 8000
DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"
API = "/api/v1"
# GET /jobs/{id}/model?format=: what each format's file is called (the server's names).
MODEL_SUFFIXES = {"keras": "best.keras", "saved_model": "saved_model.tar.gz", "onnx": "best.onnx"}
FINISHED = frozenset({"succeeded", "failed", "cancelled"})
# The largest page every list endpoint accepts (jobs and datasets: 500, trials: 1000).
MAX_PAGE = 500

Ref = str | Mapping[str, Any]  # an id, or what the client returned for it (a dict with "id")


def _id(ref: Ref) -> str:
    return ref if isinstance(ref, str) else str(ref["id"])


def default_url() -> str:
    """TUNER_URL; else the service on this machine at TUNER_PORT (what `tuner-service serve`
    and `make run` listen on), else port 8000."""
    url = os.environ.get("TUNER_URL")
    if url:
        return url
    port = os.environ.get("TUNER_PORT", "").strip()
    return f"http://127.0.0.1:{port}" if port.isdigit() else DEFAULT_URL


def _segment(value: str) -> str:
    """One path segment: an id with a "/" or "?" in it must not name another path."""
    return quote(str(value), safe="")


def _merge(spec: dict[str, Any], section: str, **values: Any) -> None:
    """Set the given non-None values in spec[section], keeping what the section already had."""
    given = {k: v for k, v in values.items() if v is not None}
    if given:
        spec[section] = {**(spec.get(section) or {}), **given}


def _job_body(
    dataset: Ref,
    algorithm: str | None,
    max_trials: int | None,
    epochs: int | None,
    objective: str | Mapping[str, Any] | None,
    spec: dict[str, Any],
) -> dict[str, Any]:
    """POST /jobs's body (and /jobs/preview's): `spec` with the shortcuts merged in."""
    body: dict[str, Any] = {**spec, "dataset_id": _id(dataset)}
    _merge(body, "tuner", algorithm=algorithm, max_trials=max_trials)
    _merge(body, "training", epochs=epochs)
    if isinstance(objective, str):
        _merge(body, "objective", name=objective)
    elif objective is not None:
        body["objective"] = dict(objective)
    return body


class Client:
    """A tuner-service client.

    `url` defaults to TUNER_URL, else http://127.0.0.1 at TUNER_PORT (8000 when unset);
    `api_key` to TUNER_API_KEY.
    Jobs and datasets are plain dicts as the API returns them; any method taking a job or
    dataset takes its id or that dict. Every failure raises a `tuner_client.TunerError`.
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        page_size: int = MAX_PAGE,
    ) -> None:
        self.url = (url or default_url()).rstrip("/")
        api_key = api_key if api_key is not None else os.environ.get("TUNER_API_KEY")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.page_size = max(1, min(page_size, MAX_PAGE))
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- HTTP -------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, API + path, **kwargs)
        except httpx.TransportError as exc:
            raise error_from_transport(exc, self.url) from exc
        if response.is_error:
            raise error_from_response(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._request(method, path, **kwargs).json()

    def _pages(self, path: str, **params: Any) -> Iterator[dict[str, Any]]:
        """Every item of a list endpoint, page by page ({items, total, limit, offset})."""
        offset = 0
        while True:
            page = self._json(
                "GET", path, params={**params, "limit": self.page_size, "offset": offset}
            )
            yield from page["items"]
            offset += len(page["items"])
            # An empty page ends it too: rows deleted meanwhile must not loop us forever.
            if not page["items"] or offset >= page["total"]:
                return

    # -- datasets ---------------------------------------------------------------------

    def upload(
        self,
        path: str | os.PathLike[str],
        target: str | None = None,
        *,
        name: str | None = None,
        task: str | None = None,
    ) -> dict[str, Any]:
        """Upload a CSV, Parquet or NPZ file; returns the dataset (rows, task, units_range…)."""
        path = Path(path)
        form = {k: v for k, v in {"target": target, "name": name, "task": task}.items() if v}
        with path.open("rb") as file:
            return self._json("POST", "/datasets", files={"file": (path.name, file)}, data=form)

    def dataset(self, dataset: Ref) -> dict[str, Any]:
        return self._json("GET", f"/datasets/{_id(dataset)}")

    def datasets(self) -> list[dict[str, Any]]:
        return list(self._pages("/datasets"))

    def delete_dataset(self, dataset: Ref) -> None:
        """Delete a dataset (Conflict while a job refers to it)."""
        self._request("DELETE", f"/datasets/{_id(dataset)}")

    def resolve_dataset(self, ref: str) -> str:
        """The full id of the dataset whose id starts with `ref` (a full id as given)."""
        if is_full_id(ref):
            return ref
        return match_prefix(
            "dataset",
            ref,
            self._pages("/datasets"),
            lambda d: f"{d['name']}, {d['rows']} rows, created {d['created_at']}",
        )

    # -- jobs -------------------------------------------------------------------------

    def submit(
        self,
        dataset: Ref,
        *,
        algorithm: str | None = None,
        max_trials: int | None = None,
        epochs: int | None = None,
        objective: str | Mapping[str, Any] | None = None,
        **spec: Any,
    ) -> dict[str, Any]:
        """Queue a search on `dataset`; returns the job (status `queued`).

        `spec` takes the job spec's sections as keyword arguments (`tuner=`, `search_space=`,
        `training=`, `callbacks=`, `max_runtime_s=`...), and the job's own `name=` and
        `notes=` (free text, up to 10,000 characters). The shortcuts `algorithm`,
        `max_trials`, `epochs` (training.epochs) and `objective` (a metric name or a dict)
        are merged into those sections and win over the same key there. `max_runtime_s`
        left out (with no `max_trials`) is a budget derived from the table; `None` is none.
        """
        body = _job_body(dataset, algorithm, max_trials, epochs, objective, spec)
        return self._json("POST", "/jobs", json=body)

    def preview(
        self,
        dataset: Ref,
        *,
        algorithm: str | None = None,
        max_trials: int | None = None,
        epochs: int | None = None,
        objective: str | Mapping[str, Any] | None = None,
        **spec: Any,
    ) -> dict[str, Any]:
        """What `submit` with the same arguments would queue, queueing nothing: `spec` (the
        resolved spec; its `derivation` says what was derived from the table, the steps per
        epoch it came from, and where the budget came from), `search_space`,
        `trials_planned` and `max_runtime_s` (the time budget, or None)."""
        body = _job_body(dataset, algorithm, max_trials, epochs, objective, spec)
        return self._json("POST", "/jobs/preview", json=body)

    def set_budget(self, job: Ref, seconds: float | None) -> dict[str, Any]:
        """Change a queued or running job's time budget (`None`: no budget), counted from its
        first start; returns the job. A budget already spent stops the search at its next
        heartbeat. Conflict once the job has finished."""
        return self._json("PATCH", f"/jobs/{_id(job)}", json={"max_runtime_s": seconds})

    def set_notes(self, job: Ref, notes: str | None) -> dict[str, Any]:
        """Replace the job's notes (`None` clears them), at any point of its life, a
        finished job's too; returns the job. Up to 10,000 characters (longer: InvalidRequest)."""
        return self._json("PATCH", f"/jobs/{_id(job)}", json={"notes": notes})

    def summary(self, job: Ref) -> str:
        """The job now, in the lines `tuner status` prints: status, progress (its time under
        a budget), best trial, ensemble and the verdict (when a baseline beat the search)."""
        from tuner_client.display import summary

        state = self.job(job)
        try:  # its rows say what an automatic budget came from
            dataset = self.dataset(state["dataset_id"])
        except NotFound:
            return "\n".join(summary(state))
        return "\n".join(summary(state, dataset["name"], dataset["rows"]))

    def job(self, job: Ref) -> dict[str, Any]:
        """The job now: status, progress, best so far, effective search space, error."""
        return self._json("GET", f"/jobs/{_id(job)}")

    def jobs(
        self, status: str | None = None, *, search: str | None = None, dataset: Ref | None = None
    ) -> list[dict[str, Any]]:
        """Every job (newest first), optionally only those with this status, on this dataset,
        and whose name, id, notes or dataset's name contain `search` (case-insensitive; the
        server filters)."""
        given = {"status": status, "q": search, "dataset_id": _id(dataset) if dataset else None}
        return list(self._pages("/jobs", **{k: v for k, v in given.items() if v}))

    def resolve_job(self, ref: str) -> str:
        """The full id of the job whose id starts with `ref` (the short id the dashboard and
        progress bar show); a full id is returned as given, without a request."""
        if is_full_id(ref):
            return ref
        return match_prefix(
            "job",
            ref,
            self._pages("/jobs"),
            lambda j: (
                f"{j['status']}, created {j['created_at']}"
                + (f", {j['name']!r}" if j.get("name") else "")
            ),
        )

    def delete(self, job: Ref) -> None:
        """Delete a finished job with its trials and files (Conflict while queued or
        running: cancel it first)."""
        self._request("DELETE", f"/jobs/{_id(job)}")

    def cancel(self, job: Ref) -> dict[str, Any]:
        """Cancel: a queued job at once, a running one at the end of its epoch (Conflict if
        it has finished)."""
        return self._json("POST", f"/jobs/{_id(job)}/cancel")

    def wait(
        self,
        job: Ref,
        *,
        progress: bool | TextIO = True,
        poll_s: float = 1.0,
        timeout: float | None = None,
        raise_on_failure: bool = True,
    ) -> dict[str, Any]:
        """Poll until the job finishes; return its final state.

        `progress` draws a bar (trials done / planned, best so far; under a time budget, the
        time elapsed and left) on stderr, or on the stream given. A job that ends `failed`
        raises `JobFailed` (its `detail` is the job's error) unless
        `raise_on_failure=False`; `cancelled` is returned like `succeeded`, since someone
        asked for it. Past `timeout` seconds, `WaitTimeout`.
        """
        state = self.job(job)
        deadline = None if timeout is None else time.monotonic() + timeout
        bar = None
        if progress:
            bar = JobProgress(state, sys.stderr if progress is True else progress)
        try:
            while True:
                if bar is not None:
                    bar.update(state)
                if state["status"] in FINISHED:
                    break
                if deadline is not None and time.monotonic() > deadline:
                    raise WaitTimeout(state, timeout or 0)
                time.sleep(poll_s)
                state = self.job(state)
        finally:
            if bar is not None:
                bar.close()
        if state["status"] == "failed" and raise_on_failure:
            raise JobFailed(state)
        return state

    # -- results ----------------------------------------------------------------------

    def trials(self, job: Ref, *, order: str = "started") -> pd.DataFrame:
        """Every trial as a DataFrame row, one column per hyperparameter (`order`: started
        or score, best first)."""
        # pandas is imported here, not at the top: it costs a CLI command seconds to load.
        from tuner_client.frames import trials_frame

        return trials_frame(list(self._pages(f"/jobs/{_id(job)}/trials", order=order)))

    def trial(self, job: Ref, trial_id: str) -> dict[str, Any]:
        """One trial with its per-epoch `metrics`."""
        return self._json("GET", f"/jobs/{_id(job)}/trials/{_segment(trial_id)}")

    def resolve_trial(self, job: Ref, ref: str) -> str:
        """The stored id of the job's trial `ref` names: the id itself, or its number as the
        dashboard and `trials` show it ("3" for KerasTuner's zero-padded "0003")."""
        ids = [str(t["trial_id"]) for t in self._pages(f"/jobs/{_id(job)}/trials")]
        if ref in ids:
            return ref
        numbered = [i for i in ids if ref.isdigit() and i.isdigit() and int(i) == int(ref)]
        if len(numbered) == 1:
            return numbered[0]
        raise NotFound("Trial not found", f"job {_id(job)} has no trial {ref!r}")

    def pareto(self, job: Ref) -> dict[str, Any]:
        """A multi-objective job's Pareto front: `items` (trial_id, objectives,
        hyperparameters) and `objectives` (Conflict for a single-objective job)."""
        return self._json("GET", f"/jobs/{_id(job)}/pareto")

    def importance(self, job: Ref) -> dict[str, Any]:
        """How much each hyperparameter mattered (`importances`, summing to 1), over the
        completed trials (Conflict below the API's minimum number of trials)."""
        return self._json("GET", f"/jobs/{_id(job)}/importance")

    def model_card(self, job: Ref, *, markdown: bool = False) -> Any:
        """The best model's card: a dict (dataset, preprocessing, scores, versions,
        formats), or its Markdown text with `markdown=True`."""
        path = f"/jobs/{_id(job)}/model_card"
        if markdown:
            return self._request("GET", path, params={"format": "md"}).text
        return self._json("GET", path)

    def best(self, job: Ref) -> dict[str, Any]:
        """The best completed trial: hyperparameters, score, per-epoch metrics."""
        return self._json("GET", f"/jobs/{_id(job)}/best")

    def download_model(
        self,
        job: Ref,
        path: str | os.PathLike[str],
        *,
        format: str = "keras",  # the API's own name for it
        trial: str | None = None,
    ) -> Path:
        """Save the best model (preprocessing inside) to `path`; returns the path.

        `format`: `keras` (a .keras file), `saved_model` (a .tar.gz TensorFlow Serving
        loads) or `onnx`. `trial`: that trial's model instead (.keras only): the best
        trial's, or a Pareto-front trial's of a multi-objective job. A directory gets the
        server's file name (`<job id>-best.keras`, `<job id>-trial-<id>.keras`...) inside it.
        """
        if trial is not None and format != "keras":
            raise ValueError("a trial's model is a .keras file only")
        if format not in MODEL_SUFFIXES:
            raise ValueError(f"format must be one of {', '.join(MODEL_SUFFIXES)}")
        if trial is not None:
            source = f"/jobs/{_id(job)}/trials/{_segment(trial)}/model"
            name = f"{_id(job)}-trial-{trial}.keras"
        else:
            source = f"/jobs/{_id(job)}/model?format={format}"
            name = f"{_id(job)}-{MODEL_SUFFIXES[format]}"
        target = Path(path)
        if target.is_dir():
            target = target / name
        if not target.parent.is_dir():  # say so, rather than name the temporary file below
            raise FileNotFoundError(errno.ENOENT, "no such directory", str(target.parent))
        # Stream into a temporary file beside the target and rename it into place, so an
        # interrupted download never leaves a truncated model under the final name.
        with tempfile.NamedTemporaryFile(dir=target.parent, suffix=".part", delete=False) as tmp:
            try:
                self._stream_to(source, tmp)
            except BaseException:
                tmp.close()
                Path(tmp.name).unlink(missing_ok=True)
                raise
        Path(tmp.name).replace(target)
        return target

    def _stream_to(self, path: str, out: Any) -> None:
        try:
            with self._http.stream("GET", API + path) as response:
                if response.is_error:
                    response.read()
                    raise error_from_response(response)
                for chunk in response.iter_bytes():
                    out.write(chunk)
        except httpx.TransportError as exc:
            raise error_from_transport(exc, self.url) from exc

    def predict(
        self, job: Ref, rows: pd.DataFrame | Iterable[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        """Predictions of the best model for raw rows (dicts by column, or a DataFrame; NaN
        and None are missing values): `label` and `probabilities`, or `value`."""
        body = {"rows": rows_payload(rows)}
        return self._json("POST", f"/jobs/{_id(job)}/predict", json=body)["predictions"]
