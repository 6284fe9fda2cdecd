"""(1) The same RandomSearch through the service and as a plain KerasTuner script.

Both sides train 10 trials x 10 epochs (no early stopping: the plain script has none)
on the same 2,000-row CSV with the same hyperparameters. The service's clock runs from
POST /jobs to `succeeded` as a client polling every 0.1 s sees it, with a real worker
on SQLite, idle and warm as in a running service: its spare search process has
imported TensorFlow before the clock starts (TUNER_PREWARM). The script's clock runs
from launching its process to the end of `tuner.search`, its TensorFlow import
included: that import, once per search, is what a plain script cannot avoid. The
script runs at the niceness of the service's search child (TUNER_WORKER_NICE), so both
compete alike with whatever else the machine runs.

Scores: both sides declare the same search space in the same order and seed their
RandomSearch alike, so they train the same 10 configurations (the row says in how many
trials they matched), on the same rows: the script gets the service's training and
validation rows (its seeded 20% split) as `validation_data`. So the best val_accuracy
of the two sides is comparable, and each best model's accuracy on the same 2,000
held-out rows is measured too, after the clocks stopped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from app.settings import Settings
from benchmarks.data import TARGET, TEST_SEED, write_csv
from benchmarks.harness import ROOT, service, submit, upload_csv, wait_finished, wait_warm
from benchmarks.report import Row
from tuner_jobs.search.split import split_rows

TRIALS, EPOCHS, SEED, VALIDATION_SPLIT = 10, 10, 42, 0.2
SCRIPT = ROOT / "benchmarks" / "plain_script.py"


def job_spec(dataset_id: str) -> dict[str, Any]:
    return {
        "dataset_id": dataset_id,
        "tuner": {"algorithm": "random_search", "max_trials": TRIALS, "seed": SEED},
        "objective": {"name": "val_accuracy", "direction": "max"},
        "training": {"epochs": EPOCHS, "validation_split": VALIDATION_SPLIT},
        "callbacks": {"early_stopping": None},
    }


def script_rows(train: Path, workdir: Path) -> tuple[Path, Path]:
    """The service's training and validation rows of `train` (its seeded split, computed
    by the service's own function), as two CSVs for the script's `validation_data`."""
    frame = pd.read_csv(train)
    # Stratified as the service splits a classification table: by class index (sorted).
    labels = pd.factorize(frame[TARGET], sort=True)[0]
    train_rows, val_rows = split_rows(len(frame), VALIDATION_SPLIT, SEED, labels=labels)
    workdir.mkdir(parents=True, exist_ok=True)
    fit, val = workdir / "fit.csv", workdir / "validation.csv"
    frame.iloc[train_rows].to_csv(fit, index=False)
    frame.iloc[val_rows].to_csv(val, index=False)
    return fit, val


def run_script(train: Path, test: Path, workdir: Path, nice: int) -> dict[str, Any]:
    fit, val = script_rows(train, workdir / "rows")
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, str(SCRIPT), str(fit), str(val), str(test), TARGET, str(workdir)],
        cwd=ROOT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True,
        text=True,
        preexec_fn=lambda: os.nice(nice),
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    # CLOCK_MONOTONIC is one clock for every process on the machine.
    result["wall_s"] = result["searched_at"] - started
    result["import_s"] = result["imported_at"] - started
    return result


def test_accuracy(client: httpx.Client, job_id: str, test: Path) -> float:
    frame = pd.read_csv(test)
    truth = frame.pop(TARGET).tolist()
    response = client.post(
        f"/api/v1/jobs/{job_id}/predict", json={"rows": frame.to_dict("records")}, timeout=300
    )
    response.raise_for_status()
    labels = [p["label"] for p in response.json()["predictions"]]
    return sum(a == b for a, b in zip(labels, truth, strict=True)) / len(truth)


def run_service(train: Path, test: Path) -> dict[str, Any]:
    with service() as (svc, client):
        dataset = upload_csv(client, train, TARGET)
        svc.start_worker()
        wait_warm(svc)  # an idle worker of a running service is warm (TUNER_PREWARM)
        started = time.monotonic()
        job = submit(client, job_spec(dataset["id"]))
        done = wait_finished(client, [job["id"]])[job["id"]]
        trials = client.get(f"/api/v1/jobs/{job['id']}/trials", params={"limit": 100}).json()
        started_order = sorted(trials["items"], key=lambda t: int(t["trial_id"]))
        return {
            "wall_s": done["finished_monotonic"] - started,
            "best_score": done["best"]["score"],
            "test_accuracy": test_accuracy(client, job["id"], test),
            "configurations": [t["hyperparameters"] for t in started_order],
        }


def measure() -> list[Row]:
    nice = Settings().worker_nice
    with tempfile.TemporaryDirectory(prefix="tuner-bench-") as tmp:
        train = write_csv(Path(tmp) / "train.csv")
        test = write_csv(Path(tmp) / "test.csv", seed=TEST_SEED)
        script = run_script(train, test, Path(tmp) / "plain", nice)
        svc = run_service(train, test)
    ratio = svc["wall_s"] / script["wall_s"]
    same = sum(
        a == b for a, b in zip(svc["configurations"], script["configurations"], strict=False)
    )
    return [
        Row(
            "1. service vs plain KerasTuner script",
            "wall time, RandomSearch 10 trials x 10 epochs, 2,000 rows",
            f"{svc['wall_s']:.1f} s vs {script['wall_s']:.1f} s = {ratio:.2f}x",
            "<= 0.8x",
            ratio <= 0.8,
            f"the script's time includes {script['import_s']:.1f} s of imports (Keras, "
            "KerasTuner, TensorFlow); the service's worker had them done",
        ),
        Row(
            "",
            "best score: best trial's val_accuracy, same validation rows",
            f"{svc['best_score']:.4f} vs {script['best_score']:.4f}",
            "service >= script",
            svc["best_score"] >= script["best_score"],
            f"the same configuration in {same} of {TRIALS} trials (same space, same seed)",
        ),
        Row(
            "",
            "best model's accuracy on 2,000 held-out rows",
            f"{svc['test_accuracy']:.4f} vs {script['test_accuracy']:.4f}",
            note="for information: the trial that wins on 400 validation rows may not be "
            "the one that generalizes best, on either side",
        ),
    ]


if __name__ == "__main__":
    for row in measure():
        print(row)
