"""The model card: what the job's model is, what it learned from, how good it is.

The model is the best trial's, or the job's ensemble of trials when that scored higher
(tuner_jobs.search.ensemble_model): its card lists the members, their weights and their
own scores, and `trial_id` is null.

Written by the search process beside the model each time the best model changes (and once
more when the search ends, with the test score and the baselines), as JSON and as
Markdown; the API serves the files as they are (GET /jobs/{id}/model_card) and the
SavedModel archive carries both. Scores, hyperparameters and timings are read back from
the job's rows, so the card says what GET /jobs/{id} says.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np

from app.search.spec import ResolvedSpec
from app.search.table_profiles import MISSING_TOKEN
from app.store.search_values import CardFacts, SearchDataset, SearchJob
from tuner_jobs.search.data import TrainingData, input_names
from tuner_jobs.search.layers import numeric_statistics

CARD_VERSION = 1


class CardReads(Protocol):
    """Where the card reads back the job's rows (app.store.search_gateway.SearchDatabase)."""

    def card_facts(self, trial_ids: list[str]) -> CardFacts: ...


@dataclass(frozen=True)
class CardContext:
    """What the card needs besides the trial: set on the tuner by runner.build_search."""

    job: SearchJob
    spec: ResolvedSpec
    data: TrainingData
    reads: CardReads

    @property
    def dataset(self) -> SearchDataset:
        return self.job.dataset


def _versions() -> dict[str, str | None]:
    import keras
    import keras_tuner
    import tensorflow as tf

    versions: dict[str, str | None] = {
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "keras_tuner": keras_tuner.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
    }
    for name in ("tf2onnx", "onnx"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:  # the ONNX export is skipped without them
            versions[name] = None
    return versions


def _dataset_part(context: CardContext, serving: dict[str, str]) -> dict[str, Any]:
    dataset = context.dataset
    names = input_names(dataset.columns)
    return {
        "id": dataset.id,
        "name": dataset.name,
        "sha256": dataset.sha256,
        "format": dataset.format,
        "rows": dataset.rows,
        "rows_dropped": dataset.rows_dropped,
        "target": dataset.target,
        "task": dataset.task,
        "classes": dataset.classes,
        "columns": [
            {
                "name": c["name"],
                "kind": c["kind"],
                "missing": c.get("missing", 0),
                "keras_input": names[c["name"]],
                "serving_input": serving[names[c["name"]]],
            }
            for c in dataset.columns
        ],
    }


def _preprocessing_part(context: CardContext) -> dict[str, Any]:
    """The statistics the preprocessor was built from (the same rows, the same function)."""
    columns, data = context.dataset.columns, context.data
    numeric = [c["name"] for c in columns if c["kind"] == "numeric"]
    part: dict[str, Any] = {"numeric": [], "categorical": []}
    if numeric:
        train = data.frame.iloc[data.split.train][numeric].to_numpy(dtype="float64")
        stats = numeric_statistics(train)
        part["numeric"] = [
            {
                "column": name,
                "median": float(stats.medians[i]),
                "mean": float(stats.mean[i]),
                "variance": float(stats.variance[i]),
            }
            for i, name in enumerate(numeric)
        ]
    part["categorical"] = [
        {
            "column": c["name"],
            "vocabulary_size": len(c["vocabulary"]),
            "out_of_vocabulary_buckets": 1,
            # one_hot width: the vocabulary plus the one bucket for unseen categories
            "encoded_width": len(c["vocabulary"]) + 1,
        }
        for c in columns
        if c["kind"] == "categorical"
    ]
    part["encoded_width"] = int(data.x_train.shape[1])
    part["rows"] = {
        "training": len(data.split.train),
        "validation": len(data.split.validation),
        "test": len(data.split.test),
    }
    return part


def _io_part(dataset: SearchDataset) -> dict[str, Any]:
    if dataset.task == "regression":
        output = "one value per row: the predicted target"
    elif len(dataset.classes or []) == 2:
        output = f"one value per row: the probability of class {dataset.classes[1]!r}"  # type: ignore[index]
    else:
        output = "one probability per class, in the order of dataset.classes"
    return {
        "shape": "one input per column, each [batch, 1]",
        "numeric": "float32; NaN for a missing value (the model fills in the training median)",
        "categorical": f"string; {MISSING_TOKEN!r} for a missing value; a category not seen "
        "in training falls into the out-of-vocabulary bucket",
        "output": output,
    }


def _scores_and_training(context: CardContext, trial_id: str) -> dict[str, Any]:
    facts = context.reads.card_facts([trial_id])
    row = facts.trials.get(trial_id)
    test = facts.test_metrics if (facts.test_metrics or {}).get("trial_id") == trial_id else None
    started = facts.started_at
    baselines = facts.baselines
    completed = facts.trials_completed
    # A list objective scores trials by its first (KerasTuner's score); the card names all.
    objective = context.spec.primary_objective
    return {
        "hyperparameters": row.hyperparameters if row is not None else None,
        "scores": {
            "objective": {"name": objective.name, "direction": objective.direction},
            "objectives": [
                {"name": o.name, "direction": o.direction} for o in context.spec.objectives
            ],
            "validation": row.score if row is not None else None,
            "cross_validation": {"fold_scores": row.fold_scores}
            if row is not None and row.fold_scores
            else None,
            "test": test,
            "baselines": baselines,
        },
        "training": {
            "best_epoch": row.best_epoch if row is not None else None,
            "epochs_run": row.epochs_run if row is not None else None,
            "stopped_early": row.stopped_early if row is not None else None,
            "trial_duration_s": row.duration_s if row is not None else None,
            "trials_completed": completed,
            "search_started_at": started.isoformat() if started else None,
        },
    }


def _ensemble_part(context: CardContext, ensemble: dict[str, Any]) -> dict[str, Any]:
    """The card's scores and training for the ensemble, and its members with their own."""
    ids = [member["trial_id"] for member in ensemble["members"]]
    facts = context.reads.card_facts(ids)
    rows, completed = facts.trials, facts.trials_completed
    started, baselines = facts.started_at, facts.baselines
    objective = context.spec.primary_objective
    members = []
    for member in ensemble["members"]:
        row = rows.get(member["trial_id"])
        members.append(
            {
                "trial_id": member["trial_id"],
                "weight": member["weight"],
                "score": row.score if row is not None else None,
                "hyperparameters": row.hyperparameters if row is not None else None,
            }
        )
    test = ensemble.get("test_score")
    rows_held = len(context.data.split.test)
    return {
        "ensemble": {**ensemble, "members": members},
        "hyperparameters": None,
        "scores": {
            "objective": {"name": objective.name, "direction": objective.direction},
            "objectives": [{"name": objective.name, "direction": objective.direction}],
            "validation": ensemble["score"],
            "cross_validation": None,
            "test": None
            if test is None
            else {"score": test, "metric": objective.name, "rows": rows_held},
            "baselines": baselines,
        },
        "training": {
            "members": len(members),
            "members_are": ensemble.get("members_are"),
            "trials_completed": completed,
            "search_started_at": started.isoformat() if started else None,
        },
    }


def build_card(
    context: CardContext,
    trial_id: str | None,
    *,
    serving: dict[str, str],
    formats: dict[str, dict[str, Any]],
    ensemble: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The card of trial `trial_id`'s model, or of the job's `ensemble` (trial_id None).
    `serving`: Keras input name -> the SavedModel and ONNX input name; `formats`: what was
    exported (format -> file, and its details)."""
    job = context.job
    if ensemble is not None:
        found = _ensemble_part(context, ensemble)
    else:
        found = _scores_and_training(context, trial_id)  # type: ignore[arg-type]
    card = {
        "card_version": CARD_VERSION,
        "job_id": job.id,
        "job_name": job.name,
        "model": "trial" if ensemble is None else "ensemble",
        "trial_id": None if ensemble is not None else trial_id,
        "written_at": datetime.now(UTC).isoformat(),
        "task": context.dataset.task,
        "dataset": _dataset_part(context, serving),
        "inputs": _io_part(context.dataset),
        "preprocessing": _preprocessing_part(context),
        "hyperparameters": found["hyperparameters"],
        "scores": found["scores"],
        "training": found["training"],
        "formats": formats,
        "versions": _versions(),
    }
    if ensemble is not None:
        card["ensemble"] = found["ensemble"]
    return card


def card_json(card: dict[str, Any]) -> str:
    return json.dumps(card, indent=2, allow_nan=False) + "\n"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "—" if value is None else str(value)


def _md_cell(value: Any) -> str:
    return _fmt(value).replace("|", "\\|")


def card_markdown(card: dict[str, Any]) -> str:
    """The card for people: the same numbers as the JSON, as Markdown tables."""
    dataset, scores, prep = card["dataset"], card["scores"], card["preprocessing"]
    ensemble = card.get("ensemble")
    what = (
        f"ensemble of {len(ensemble['members'])} trials"
        if ensemble
        else f"trial {card['trial_id']}"
    )
    lines = [
        f"# Model card: job {card['job_name'] or card['job_id']}, {what}",
        "",
        f"Task: {card['task']}. Written {card['written_at']}.",
        "",
        "## Dataset",
        "",
        f"- name: {dataset['name']} ({dataset['format']}), sha256 `{dataset['sha256']}`",
        f"- rows: {dataset['rows']} (dropped for a missing target: {dataset['rows_dropped']})",
        f"- target: `{dataset['target']}`; classes: {_fmt(dataset['classes'])}",
        "",
        "| column | kind | missing | Keras input | serving input |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {_md_cell(c['name'])} | {c['kind']} | {c['missing']} | `{c['keras_input']}` "
        f"| `{c['serving_input']}` |"
        for c in dataset["columns"]
    ]
    lines += ["", "## Preprocessing", "", f"Rows: {_fmt(prep['rows'])}.", ""]
    if prep["numeric"]:
        lines += ["| numeric column | median | mean | variance |", "| --- | --- | --- | --- |"]
        lines += [
            f"| {_md_cell(n['column'])} | {_fmt(n['median'])} | {_fmt(n['mean'])} "
            f"| {_fmt(n['variance'])} |"
            for n in prep["numeric"]
        ]
        lines.append("")
    if prep["categorical"]:
        lines += ["| categorical column | vocabulary size | one-hot width |", "| --- | --- | --- |"]
        lines += [
            f"| {_md_cell(c['column'])} | {c['vocabulary_size']} | {c['encoded_width']} |"
            for c in prep["categorical"]
        ]
        lines.append("")
    if ensemble:
        lines += _ensemble_markdown(ensemble)
    else:
        lines += ["## Hyperparameters", "", "| name | value |", "| --- | --- |"]
        lines += [f"| {k} | {_md_cell(v)} |" for k, v in (card["hyperparameters"] or {}).items()]
    objective = scores["objective"]
    lines += [
        "",
        "## Scores",
        "",
        f"- validation {objective['name']} ({objective['direction']}): "
        f"{_fmt(scores['validation'])}",
    ]
    if scores["cross_validation"]:
        lines.append(f"- fold scores: {_fmt(scores['cross_validation']['fold_scores'])}")
    if scores["test"]:
        lines.append(
            f"- test {scores['test'].get('metric')}: {_fmt(scores['test'].get('score'))} "
            f"({scores['test'].get('rows')} held-out rows)"
        )
    for name, baseline in (scores["baselines"] or {}).items():
        if isinstance(baseline, dict):
            lines.append(f"- baseline {name}: {_fmt(baseline.get('score'))}")
    training = card["training"]
    lines += ["", "## Training", ""]
    lines += [f"- {k.replace('_', ' ')}: {_fmt(v)}" for k, v in training.items()]
    lines += ["", "## Formats", ""]
    for name, info in card["formats"].items():
        details = ", ".join(f"{k} {v}" for k, v in info.items() if k != "file")
        lines.append(f"- {name}: `{info['file']}`" + (f" ({details})" if details else ""))
    lines += ["", "## Inputs", ""]
    lines += [f"- {k}: {v}" for k, v in card["inputs"].items()]
    lines += ["", "## Versions", ""]
    lines += [f"- {k}: {_fmt(v)}" for k, v in card["versions"].items()]
    return "\n".join(lines) + "\n"


def _ensemble_markdown(ensemble: dict[str, Any]) -> list[str]:
    lines = [
        "## Ensemble",
        "",
        f"The weighted average of {len(ensemble['members'])} trials' models "
        f"({ensemble.get('members_are', '').replace('_', ' ')}), chosen by greedy ensemble "
        f"selection on their out-of-fold predictions: {ensemble.get('metric')} "
        f"{_fmt(ensemble['score'])}, against {_fmt(ensemble.get('trial_score'))} for the best "
        "trial alone.",
        "",
        "| trial | weight | trial score |",
        "| --- | --- | --- |",
    ]
    lines += [
        f"| {m['trial_id']} | {_fmt(m['weight'])} | {_fmt(m.get('score'))} |"
        for m in ensemble["members"]
    ]
    return lines
