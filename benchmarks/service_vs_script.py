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

Scores: each side's best val_accuracy is on its own validation rows (the service holds
out a seeded random 20%, `validation_split` the last 20%) and the two sides sample
their own 10 configurations, so the comparison of models is each best model's accuracy
on the same 2,000 held-out rows, measured after the clocks stopped.
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

TRIALS, EPOCHS = 10, 10
SCRIPT = ROOT / "benchmarks" / "plain_script.py"


def job_spec(dataset_id: str) -> dict[str, Any]:
    return {
        "dataset_id": dataset_id,
        "tuner": {"algorithm": "random_search", "max_trials": TRIALS, "seed": 42},
        "objective": {"name": "val_accuracy", "direction": "max"},
        "training": {"epochs": EPOCHS, "validation_split": 0.2},
        "callbacks": {"early_stopping": None},
    }


def run_script(train: Path, test: Path, workdir: Path, nice: int) -> dict[str, Any]:
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, str(SCRIPT), str(train), str(test), TARGET, str(workdir)],
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
        return {
            "wall_s": done["finished_monotonic"] - started,
            "best_score": done["best"]["score"],
            "test_accuracy": test_accuracy(client, job["id"], test),
        }


def measure() -> list[Row]:
    nice = Settings().worker_nice
    with tempfile.TemporaryDirectory(prefix="tuner-bench-") as tmp:
        train = write_csv(Path(tmp) / "train.csv")
        test = write_csv(Path(tmp) / "test.csv", seed=TEST_SEED)
        script = run_script(train, test, Path(tmp) / "plain", nice)
        svc = run_service(train, test)
    ratio = svc["wall_s"] / script["wall_s"]
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
            "best model's accuracy on 2,000 held-out rows",
            f"{svc['test_accuracy']:.4f} vs {script['test_accuracy']:.4f}",
            "service >= script",
            svc["test_accuracy"] >= script["test_accuracy"],
            f"best val_accuracy {svc['best_score']:.4f} vs {script['best_score']:.4f} "
            "(different validation rows)",
        ),
    ]


if __name__ == "__main__":
    for row in measure():
        print(row)
