"""`make bench-defaults`: which defaults known to help small-table networks help the ones a
default search trains: weight decay (AdamW), label smoothing, batch normalization, robust
scaling of skewed numeric inputs (Kadra et al. 2021; Holzmüller et al. 2024, RealMLP).

Two whole searches differ by which configurations they happen to draw, far more than by
any of these, so each candidate is measured paired: on each table of `make bench-search`
(benchmarks/search_tables.py), for each seed, CONFIGS configurations are drawn from the
table's default search space, and each network is trained once as a search trains it
and once more per candidate, on the same rows from the same initial weights, all scored
on the same held-out rows (the 20% a default job holds out). Training is the search's:
the service's network (tuner_jobs.search.model_builder) on standardized, imputed,
one-hot inputs, a 20% validation split, the epoch cap and early stopping's patience
derived from the table (app.search.training_length), the best epoch's weights restored.

The configurations use Adam, the default space's first optimizer, so that "AdamW in
place of Adam" changes every pair; a candidate that changes nothing in a pair (batch
normalization in a network without hidden layers, robust scaling on a table without
skewed inputs) leaves that pair out of its figures.

A candidate is **kept** where, over all its pairs, the mean held-out accuracy gained is
positive by more than twice its standard error, and on no table negative by more than
twice that table's. The table prints every figure beside that rule's verdict.

    python -m benchmarks.small_table_defaults [--seeds 5] [--configs 4] [--processes 2]
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import statistics
import sys
import time
from collections import defaultdict
from typing import Any

from benchmarks.__main__ import load, print_report
from benchmarks.report import Row
from benchmarks.search_tables import TABLES, TARGET

CANDIDATES = ("adamw", "label_smoothing", "batch_norm", "robust_scaling")
LABEL_SMOOTHING = 0.1
# A numeric input is skewed when its sample skewness is beyond this (either sign).
SKEW = 1.0
TEST_SPLIT = VALIDATION_SPLIT = 0.2


def _inputs(frame: Any, train: Any, *, robust: bool) -> tuple[Any, bool]:
    """The service's encoding (median-imputed, standardized numbers; one-hot categories),
    and with `robust`, skewed numbers first centred on their median, divided by their
    interquartile range and smoothly clipped (x / sqrt(1 + (x/3)^2)), as RealMLP does.
    Statistics from the training rows only. Returns the matrix and whether any column
    was skewed (robust scaling changed something)."""
    import numpy as np
    import pandas as pd

    from tuner_jobs.search.layers import numeric_statistics

    features = frame.drop(columns=[TARGET])
    numeric = features.select_dtypes("number")
    categorical = features.drop(columns=numeric.columns)
    values = numeric.to_numpy(dtype="float64")
    medians = numeric_statistics(values[train]).medians
    values = np.where(np.isnan(values), medians, values)
    skewed = np.zeros(values.shape[1], dtype=bool)
    if robust:
        skewed = np.abs(pd.DataFrame(values[train]).skew().to_numpy()) > SKEW
        q1, q3 = np.percentile(values[train][:, skewed], [25, 75], axis=0)
        scaled = (values[:, skewed] - medians[skewed]) / np.where(q3 > q1, q3 - q1, 1.0)
        values[:, skewed] = scaled / np.sqrt(1 + (scaled / 3) ** 2)
    # As the service's Normalization layer: the training rows' mean and variance.
    stats = numeric_statistics(values[train])
    blocks = [(values - stats.mean) / np.sqrt(stats.variance)]
    if len(categorical.columns):
        blocks.append(pd.get_dummies(categorical.astype("string"), dummy_na=True).to_numpy())
    return np.hstack(blocks).astype("float32"), bool(skewed.any())


def _run_task(task: tuple[str, int, int]) -> list[dict[str, Any]]:
    """One table and seed: CONFIGS networks, each as a search trains it and per candidate."""
    name, seed, configs = task
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np
    import tensorflow as tf
    from sklearn.model_selection import train_test_split

    from app.search.search_space import effective_search_space
    from app.search.training_length import (
        default_batches,
        epochs_for,
        patience_for,
        steps_per_epoch,
    )
    from tuner_jobs.search.data import Head
    from tuner_jobs.search.hyperparameters import build_hyperparameters
    from tuner_jobs.search.model_builder import DenseHyperModel

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    frame = TABLES[name]()
    classes = sorted(frame[TARGET].astype(str).unique())
    y = frame[TARGET].astype(str).map({c: i for i, c in enumerate(classes)}).to_numpy()
    rows = np.arange(len(frame))
    train, test = train_test_split(rows, test_size=TEST_SPLIT, stratify=y, random_state=seed)
    fit, val = train_test_split(
        train, test_size=VALIDATION_SPLIT, stratify=y[train], random_state=seed
    )
    plain, _ = _inputs(frame, train, robust=False)
    robust, any_skewed = _inputs(frame, train, robust=True)
    binary = len(classes) == 2
    space = build_hyperparameters(
        effective_search_space({}, features=plain.shape[1], batches=default_batches(len(fit)))
    )
    results = []
    for config in range(configs):
        config_seed = seed * 1000 + config
        hp = space.copy()
        for param in space.space:
            hp.values[param.name] = param.random_sample(config_seed)
        hp.values["optimizer"] = "adam"
        steps = steps_per_epoch(len(fit), int(hp.get("batch_size")))
        # variant: (hyperparameters changed, label smoothing, inputs, whether it changes
        # anything in this pair)
        runs: dict[str, tuple[dict[str, Any], float, Any, bool]] = {
            "shipped": ({}, 0.0, plain, True),
            "adamw": ({"optimizer": "adamw"}, 0.0, plain, True),
            "label_smoothing": ({}, LABEL_SMOOTHING, plain, True),
            "batch_norm": ({"batch_norm": True}, 0.0, plain, int(hp.get("num_layers")) > 0),
            "robust_scaling": ({}, 0.0, robust, any_skewed),
        }
        scores = {}
        for variant, (change, smoothing, x, changed) in runs.items():
            if not changed:
                continue
            trial = hp.copy()
            trial.values.update(change)
            if binary:
                loss = keras.losses.BinaryCrossentropy(label_smoothing=smoothing)
                head = Head(1, "sigmoid", loss, ("accuracy",))  # type: ignore[arg-type]
                target = y.astype("float32")
            else:
                loss = keras.losses.CategoricalCrossentropy(label_smoothing=smoothing)
                head = Head(len(classes), "softmax", loss, ("accuracy",))  # type: ignore[arg-type]
                target = np.eye(len(classes), dtype="float32")[y]
            keras.backend.clear_session()
            keras.utils.set_random_seed(config_seed)  # the same initial weights each time
            hypermodel = DenseHyperModel(input_width=x.shape[1], head=head, seed=config_seed)
            model = hypermodel.build(trial)
            stop = keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=patience_for(steps), restore_best_weights=True
            )
            hypermodel.fit(
                trial,
                model,
                x[fit],
                target[fit],
                validation_data=(x[val], target[val]),
                epochs=epochs_for(steps),
                callbacks=[stop],
                verbose=0,
            )
            predicted = keras.ops.convert_to_numpy(model(x[test], training=False))
            labels = (predicted[:, 0] > 0.5).astype(int) if binary else predicted.argmax(axis=1)
            scores[variant] = float((labels == y[test]).mean())
        results.append({"table": name, "seed": seed, "config": config, "scores": scores})
    return results


def _mean_and_error(gains: list[float]) -> tuple[float, float]:
    mean = statistics.fmean(gains)
    error = statistics.stdev(gains) / math.sqrt(len(gains)) if len(gains) > 1 else math.inf
    return mean, error


def rows(results: list[dict[str, Any]]) -> list[Row]:
    gains: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    shipped: dict[str, list[float]] = defaultdict(list)
    for result in results:
        scores = result["scores"]
        shipped[result["table"]].append(scores["shipped"])
        for candidate in CANDIDATES:
            if candidate in scores:
                gains[candidate][result["table"]].append(scores[candidate] - scores["shipped"])
    out = []
    for table, values in shipped.items():
        out.append(
            Row(
                f"as shipped: {table}",
                "held-out accuracy, mean (min to max) over networks",
                f"{statistics.fmean(values):.3f} ({min(values):.3f} to {max(values):.3f})",
                note=f"{len(values)} networks",
            )
        )
    for candidate in CANDIDATES:
        by_table = gains[candidate]
        every = [gain for table_gains in by_table.values() for gain in table_gains]
        if not every:
            out.append(Row(candidate, "no pair it changes", "-"))
            continue
        mean, error = _mean_and_error(every)
        hurts = [
            table
            for table, table_gains in by_table.items()
            if (m := _mean_and_error(table_gains))[0] < -2 * m[1]
        ]
        kept = mean > 2 * error and not hurts
        per_table = "; ".join(
            f"{table} {statistics.fmean(g):+.3f} ({len(g)})" for table, g in by_table.items()
        )
        out.append(
            Row(
                candidate,
                "accuracy gained over the same network as shipped: mean ± standard error "
                "(pairs); per table: mean (pairs)",
                f"{mean:+.4f} ± {error:.4f} ({len(every)})",
                "> 2 standard errors above 0, below it on no table",
                met=kept,
                note=per_table + (f"; hurts {', '.join(hurts)}" if hurts else ""),
            )
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.small_table_defaults", description=__doc__
    )
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--configs", type=int, default=6, help="networks per table and seed")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--tables", default=",".join(TABLES))
    args = parser.parse_args(argv)
    started, before = time.monotonic(), load()
    tasks = [
        (name, seed, args.configs)
        for seed in range(1, args.seeds + 1)
        for name in args.tables.split(",")
    ]
    with multiprocessing.get_context("spawn").Pool(args.processes) as pool:
        results = [r for done in pool.imap_unordered(_run_task, tasks) for r in done]
    detail = f"{args.seeds} seeds x {args.configs} networks per table, {args.processes} processes; "
    print_report(rows(results), started=started, load_before=before, detail=detail)
    return 0


if __name__ == "__main__":
    sys.exit(main())
