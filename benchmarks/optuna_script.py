"""The other side of `make bench-search`: a plain Optuna search of the same networks.

What an Optuna user writes for this problem: `TPESampler` + `HyperbandPruner`, a
define-by-run objective that builds a Keras network of Dense layers from the trial's
suggestions, `model.fit` on numpy arrays with a pruning callback that reports the
objective each epoch, and `study.optimize(timeout=budget)`. optuna-integration's
`TFKerasPruningCallback` would do the reporting; it is not a dependency, and the callback
is six lines (below).

Held equal with the service's default job, so that the figure compares the searches:
- the rows and their encoding: the service's own `prepare` (tuner_jobs.search.data),
  with the job's seed, validation and test fractions, so train, validation and held-out
  rows are the very rows the service's search uses (its `split_dataset`);
- the space and the training: the job's resolved spec (`--job`: the job as GET
  /jobs/{id} or POST /jobs/preview returns it; without it, resolved here as the API
  resolves a job that gives only its dataset, test fraction and seed): its search space
  (each entry as the Optuna suggestion it means), its derived epochs and early stopping
  (monitor, patience, best weights restored), and Hyperband's resources in epochs, from
  the job's first judged epoch (`pruning.min_epochs`) to its epoch cap, factor 3;
- the network: as tuner_jobs.search.model_builder builds it;
- the time: `timeout=budget` (`--budget`; default the spec's max_runtime_s); a trial
  still training when the budget runs out stops at its next epoch and does not count
  (the service does the same with max_runtime_s).

    python -m benchmarks.optuna_script table.csv --seeds 1 --job job.json --budget 95.3

prints one line per seed, `RESULT {json}`: the best trial's validation score, the best
model's score on the held-out rows, the trials, and the held-out rows (to check them).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import keras
import optuna

from app.search.folds import smallest_class_rows
from app.search.spec import JobCreate, resolve_spec
from app.search.spec_limits import SpecLimits
from app.search.table_profiles import profile_frame
from app.search.table_readers import read_table
from app.settings import Settings, serve_layout
from benchmarks.search_tables import rows_digest
from tuner_jobs.search.data import TrainingData, prepare
from tuner_jobs.search.model_builder import OPTIMIZERS

REDUCTION_FACTOR = 3  # the service's Hyperband factor
OBJECTIVE = "val_accuracy"  # the service's default objective for classification


class Training:
    """What the search takes from the job's resolved spec."""

    def __init__(self, job: dict[str, Any]) -> None:
        spec = job["spec"]
        self.space: dict[str, Any] = job["search_space"]
        self.epochs: int = spec["training"]["epochs"]
        self.validation_split: float = spec["training"]["validation_split"]
        self.test_split: float = spec["training"]["test_split"]
        self.early_stopping: dict[str, Any] | None = spec["callbacks"]["early_stopping"]
        self.min_epochs: int = (spec.get("pruning") or {}).get("min_epochs") or 1
        self.max_runtime_s: float | None = spec.get("max_runtime_s")
        objective = spec["objective"]
        if not isinstance(objective, dict) or objective["name"] != OBJECTIVE:
            raise SystemExit(f"the script searches {OBJECTIVE}, the job {objective}")

    def callbacks(self) -> list[keras.callbacks.Callback]:
        early = self.early_stopping
        if early is None:
            return []
        return [
            keras.callbacks.EarlyStopping(
                monitor=early["monitor"],
                patience=early["patience"],
                min_delta=early.get("min_delta", 0.0),
                restore_best_weights=early["restore_best_weights"],
            )
        ]


def suggest(trial: optuna.Trial, name: str, param: dict[str, Any]) -> Any:
    """One entry of the service's search-space language as an Optuna suggestion."""
    kind = param["type"]
    if kind == "fixed":
        return param["value"]
    if kind == "choice":
        return trial.suggest_categorical(name, param["values"])
    if kind == "boolean":
        return trial.suggest_categorical(name, [False, True])
    if kind == "pow2":  # powers of two: Optuna's log-int takes no step, so tune the exponent
        low, high = int(math.log2(param["min"])), int(math.log2(param["max"]))
        return 2 ** trial.suggest_int(f"{name}_log2", low, high)
    log = param.get("sampling") == "log"
    step = None if log else param.get("step")
    if kind == "int":
        return trial.suggest_int(name, param["min"], param["max"], step=step or 1, log=log)
    return trial.suggest_float(name, param["min"], param["max"], step=step, log=log)


def build_model(trial: optuna.Trial, space: dict[str, Any], data: TrainingData) -> keras.Model:
    """tuner_jobs.search.model_builder's network, its knobs from the trial."""
    layers = suggest(trial, "num_layers", space["num_layers"])
    widths = [suggest(trial, f"units_{i}", space["units"]) for i in range(layers)]
    knobs = {
        name: suggest(trial, name, space[name])
        for name in (
            "activation",
            "dropout",
            "kernel_initializer",
            "optimizer",
            "learning_rate",
            "l2",
            "batch_norm",
        )
    }
    regularizer = keras.regularizers.L2(knobs["l2"]) if knobs["l2"] > 0 else None
    inputs = keras.Input(shape=(data.x_train.shape[1],))
    x = inputs
    for width in widths:
        x = keras.layers.Dense(
            width,
            kernel_initializer=knobs["kernel_initializer"],
            kernel_regularizer=regularizer,
        )(x)
        if knobs["batch_norm"]:
            x = keras.layers.BatchNormalization()(x)
        x = keras.layers.Activation(knobs["activation"])(x)
        if knobs["dropout"] > 0:
            x = keras.layers.Dropout(knobs["dropout"])(x)
    outputs = keras.layers.Dense(data.head.units, activation=data.head.activation)(x)
    model = keras.Model(inputs, outputs)
    optimizer = OPTIMIZERS[knobs["optimizer"]](learning_rate=knobs["learning_rate"])
    model.compile(optimizer=optimizer, loss=data.head.loss, metrics=["accuracy"])
    return model


class PruningCallback(keras.callbacks.Callback):
    """optuna-integration's TFKerasPruningCallback, and the time budget's stop."""

    def __init__(self, trial: optuna.Trial, monitor: str, deadline: float) -> None:
        super().__init__()
        self.trial, self.monitor, self.deadline = trial, monitor, deadline

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self.trial.report(float((logs or {})[self.monitor]), step=epoch + 1)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {epoch + 1}")
        if time.monotonic() >= self.deadline:
            self.trial.set_user_attr("time_budget", True)
            raise optuna.TrialPruned("time budget")


def search(data: TrainingData, training: Training, seed: int, budget: float) -> dict[str, Any]:
    keras.utils.set_random_seed(seed)
    space = training.space
    best: dict[str, Any] = {"value": -math.inf}
    deadline = time.monotonic() + budget

    def objective(trial: optuna.Trial) -> float:
        keras.backend.clear_session()
        model = build_model(trial, space, data)
        model.fit(
            data.x_train,
            data.y_train,
            batch_size=suggest(trial, "batch_size", space["batch_size"]),
            epochs=training.epochs,
            validation_data=(data.x_val, data.y_val),
            callbacks=[*training.callbacks(), PruningCallback(trial, OBJECTIVE, deadline)],
            verbose=0,
        )
        value = float(
            model.evaluate(data.x_val, data.y_val, verbose=0, return_dict=True)["accuracy"]
        )
        if value > best["value"]:  # strictly: Optuna's best_trial is the first of a tie too
            best.update(value=value, number=trial.number, model=model)
        return value

    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.HyperbandPruner(
            min_resource=min(training.min_epochs, training.epochs),
            max_resource=training.epochs,
            reduction_factor=REDUCTION_FACTOR,
        ),
    )
    started = time.monotonic()
    study.optimize(objective, timeout=budget)
    searched_s = time.monotonic() - started
    states = [t.state for t in study.trials]
    stopped = sum(bool(t.user_attrs.get("time_budget")) for t in study.trials)
    result: dict[str, Any] = {
        "seed": seed,
        "budget_s": budget,
        "search_s": searched_s,
        "epochs": training.epochs,
        "trials_completed": states.count(optuna.trial.TrialState.COMPLETE),
        "trials_pruned": states.count(optuna.trial.TrialState.PRUNED) - stopped,
        "trials_stopped": stopped,
        "test_rows": len(data.x_test),
        "test_rows_digest": rows_digest(data.split.test),
    }
    if "model" not in best:
        return {**result, "error": "no trial completed within the budget"}
    evaluated = best["model"].evaluate(data.x_test, data.y_test, verbose=0, return_dict=True)
    return {
        **result,
        "best_trial": best["number"],
        "best_is_optunas": best["number"] == study.best_trial.number,
        "score": best["value"],
        "test_score": float(evaluated["accuracy"]),
        "hyperparameters": study.best_trial.params,
    }


def resolve_here(table: Path, target: str, test_split: float, seed: int) -> dict[str, Any]:
    """The job the API would resolve for `table` given only its dataset, test fraction and
    seed (the spec and the effective space), for a run without `--job`."""
    settings = Settings()
    limit = 8 * (settings.max_upload_mb << 20)  # as the search runner reads a table
    raw = read_table(table, "csv", max_unpacked_bytes=limit)
    profile = profile_frame(raw, target, None)
    spec, space, _ = resolve_spec(
        JobCreate(dataset_id="local", training={"test_split": test_split}, tuner={"seed": seed}),
        task=profile.task,
        features=profile.features,
        limits=SpecLimits.from_settings(settings, rows=len(raw)),
        rows=len(raw),
        smallest_class=lambda: smallest_class_rows(table, "csv", target, max_unpacked_bytes=limit),
        workers=serve_layout(settings)[0],
    )
    return {"spec": spec.model_dump(mode="json"), "search_space": space}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.optuna_script", description=__doc__)
    parser.add_argument("table", type=Path, help="a CSV with a `target` column")
    parser.add_argument("--target", default="target")
    parser.add_argument("--seeds", default="1", help="comma-separated, one search each")
    parser.add_argument(
        "--job", type=Path, help="the service's job (JSON): its resolved spec and space"
    )
    parser.add_argument(
        "--budget", type=float, help="seconds per search (default: the spec's max_runtime_s)"
    )
    parser.add_argument(
        "--test-split", type=float, default=0.2, help="without --job: the held-out fraction"
    )
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    limit = 8 * (Settings().max_upload_mb << 20)  # as the search runner reads a table
    profile = profile_frame(
        read_table(args.table, "csv", max_unpacked_bytes=limit), args.target, None
    )
    if profile.task != "classification":
        raise SystemExit("the benchmark's tables are classification tables")
    job = json.loads(args.job.read_text()) if args.job else None
    for seed in (int(s) for s in args.seeds.split(",")):
        training = Training(job or resolve_here(args.table, args.target, args.test_split, seed))
        budget = args.budget if args.budget is not None else training.max_runtime_s
        if budget is None:
            raise SystemExit("no budget: give --budget, or a job with max_runtime_s")
        data = prepare(
            path=args.table,
            fmt="csv",
            target=args.target,
            task=profile.task,
            classes=profile.classes,
            columns=profile.columns,
            validation_split=training.validation_split,
            seed=seed,
            max_unpacked_bytes=limit,
            test_split=training.test_split,
        )
        result = search(data, training, seed, budget)
        print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
