"""The tables `make bench-search` prints (Markdown, pasted into docs/benchmarks.md as is).

One row per table: each side's held-out score, mean and spread (min..max) over the seeds,
the default job's model (its ensemble when used) beside its best single trial, the
default job's budget and wall time, and the issue's two targets; then one row per table
and seed, with what the run checked.
"""

from __future__ import annotations

import argparse
import math
import statistics
from importlib.metadata import version
from typing import Any

from benchmarks.__main__ import machine

# The sides that are service jobs, with the algorithm each asks for (None: the default).
SERVICE_JOBS = {"default": None, "hyperband": "hyperband"}
# Scored sides: (side, the score's key in its run), with their column names.
COLUMNS = {
    ("default", "test_score"): "default job's model",
    ("default", "trial_test_score"): "its best single trial",
    ("hyperband", "test_score"): "hyperband job's model",
    ("optuna", "test_score"): "Optuna (TPE + Hyperband pruning)",
}
BASELINES = {"linear": "logistic regression", "gradient_boosting": "gradient boosting"}


def _score(run: Any, key: str = "test_score") -> float | None:
    if isinstance(run, float | int):
        return float(run)
    return run.get(key) if isinstance(run, dict) else None


def _runs(result: dict[str, Any], side: str) -> list[dict[str, Any]]:
    found = (runs.get(side) for runs in result["seeds"].values())
    return [r for r in found if isinstance(r, dict)]


def scores(result: dict[str, Any], side: str, key: str = "test_score") -> list[float]:
    found = (_score(runs.get(side), key) for runs in result["seeds"].values())
    return [s for s in found if s is not None]


def mean(result: dict[str, Any], side: str, key: str = "test_score") -> float | None:
    got = scores(result, side, key)
    return statistics.fmean(got) if got else None


def ran(results: list[dict[str, Any]], side: str) -> bool:
    return any(side in runs for r in results for runs in r["seeds"].values())


def _why_missing(result: dict[str, Any], side: str) -> str:
    if any(r.get("unavailable") for r in _runs(result, side)):
        return "not available"
    return "not run" if not _runs(result, side) and not scores(result, side) else "failed"


def cell(result: dict[str, Any], side: str, key: str = "test_score") -> str:
    """Mean and min..max over the seeds."""
    got = scores(result, side, key)
    if not got:
        return _why_missing(result, side)
    text = f"{statistics.fmean(got):.4f}"
    if len(got) > 1:
        text += f" ({min(got):.4f}..{max(got):.4f})"
    seeds = len(result["seeds"])
    return text if len(got) == seeds else f"{text} ({len(got)} of {seeds} seeds)"


def _seconds(values: list[float]) -> str:
    if not values:
        return "-"
    text = f"{statistics.fmean(values):.0f} s"
    return text if len(values) == 1 else f"{text} ({min(values):.0f}..{max(values):.0f})"


def time_cell(result: dict[str, Any], side: str = "default") -> str:
    """The job's max_runtime_s (and where it came from) and its wall time."""
    runs = [r for r in _runs(result, side) if r.get("job_id")]
    budgets = sorted({r["budget_s"] for r in runs if r.get("budget_s") is not None})
    sources = sorted({str(r.get("budget_source")) for r in runs})
    budget = ", ".join(f"{b:.0f}" for b in budgets) or "none"
    walls = [r["wall_s"] for r in runs if r.get("wall_s") is not None]
    return f"budget {budget} s ({', '.join(sources) or '-'}); wall {_seconds(walls)}"


def ensemble_cell(result: dict[str, Any]) -> str:
    runs = [r for r in _runs(result, "default") if r.get("job_id")]
    known = [r["ensemble"] for r in runs if isinstance(r.get("ensemble"), dict)]
    if not known:
        return "none" if runs else "-"
    used = [e for e in known if e.get("used")]
    text = f"used on {len(used)} of {_n(len(runs), 'seed')}"
    if used:
        low, high = min(e["members"] for e in used), max(e["members"] for e in used)
        text += f" ({low} members)" if low == high else f" ({low}..{high} members)"
    return text


def better_baseline(result: dict[str, Any]) -> tuple[str, float] | None:
    means = {name: mean(result, name) for name in BASELINES}
    known = {name: m for name, m in means.items() if m is not None}
    return max(known.items(), key=lambda kv: kv[1]) if known else None


def verdict(ours: float | None, theirs: float | None, label: str = "") -> tuple[str, bool | None]:
    if ours is None or theirs is None:
        return "-", None
    if ours >= theirs:
        return f"met (+{ours - theirs:.4f}{label})", True
    return f"**missed** ({ours - theirs:.4f}{label})", False


def _trials(result: dict[str, Any], side: str) -> str:
    runs = _runs(result, side)
    counts = [r["trials_completed"] for r in runs if r.get("trials_completed") is not None]
    if not counts:
        return ""
    text = f"{statistics.fmean(counts):.0f}"
    if side == "optuna":
        pruned = statistics.fmean(r.get("trials_pruned", 0) for r in runs)
        text += f" (+{pruned:.0f} pruned)"
    return text


def notes(result: dict[str, Any]) -> str:
    parts = []
    trials = {side: _trials(result, side) for side in (*SERVICE_JOBS, "optuna")}
    if any(trials.values()):
        parts.append("trials completed: " + ", ".join(f"{s} {t}" for s, t in trials.items() if t))
    jobs = [j for side in SERVICE_JOBS for j in _runs(result, side) if j.get("status")]
    folds = {
        f"{j['cross_validation'].get('folds')} folds"
        if isinstance(j["cross_validation"], dict)
        else str(j["cross_validation"])
        for j in jobs
        if j.get("cross_validation")
    }
    if folds:
        parts.append(f"service cross-validation: {', '.join(sorted(folds))}")
    epochs = sorted({j["epochs"] for j in jobs if j.get("epochs")})
    if epochs:
        parts.append(f"epoch cap {', '.join(map(str, epochs))} (derived)")
    failed = [j for j in jobs if j["status"] != "succeeded"]
    if failed:
        parts.append(f"{len(failed)} job(s) {failed[0]['status']}: {failed[0].get('error')}")
    problems = sum(len(r.get("checks", [])) for r in result["seeds"].values())
    parts.append(f"{problems} check(s) failed, see below" if problems else "same held-out rows")
    return "; ".join(parts)


def _rows(rows: dict[str, Any]) -> str:
    """Optuna's one split; with folds, the rows the service's folds (and the baselines,
    on its protocol) draw from."""
    text = f"{rows['train']}/{rows['validation']}/{rows['test']}"
    if rows.get("folds"):
        every = rows["train"] + rows["validation"]
        text += f" (service and baselines: {rows['folds']} folds over {every})"
    return text


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _columns(results: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [column for column in COLUMNS if ran(results, column[0])]


def summary(results: list[dict[str, Any]]) -> tuple[list[str], dict[str, list[bool | None]]]:
    columns = _columns(results)
    header = ["table", "rows (train/val/test)", "default job: budget, wall time"]
    header += [COLUMNS[c] for c in columns]
    header += ["ensemble", *BASELINES.values()]
    header += ["job >= Optuna", "job >= better baseline", "notes"]
    lines = [_row(header), "|" + "---|" * len(header)]
    met: dict[str, list[bool | None]] = {key: [] for key in ("optuna", "baseline")}
    for key in ("trial_optuna", "trial_baseline", "hyperband_optuna", "hyperband_baseline"):
        met[key] = []
    for result in results:
        best = better_baseline(result)
        base = (best[1], f" vs {BASELINES[best[0]]}") if best else (None, "")
        optuna = mean(result, "optuna")
        ours = mean(result, "default")
        vs_optuna = verdict(ours, optuna)
        vs_baseline = verdict(ours, base[0], base[1])
        met["optuna"].append(vs_optuna[1])
        met["baseline"].append(vs_baseline[1])
        for name, side, key in (
            ("trial", "default", "trial_test_score"),
            ("hyperband", "hyperband", "test_score"),
        ):
            other = mean(result, side, key)
            met[f"{name}_optuna"].append(verdict(other, optuna)[1])
            met[f"{name}_baseline"].append(verdict(other, base[0])[1])
        cells = [
            f"{result['table']} ({result['classes']} classes)",
            _rows(result["rows"]),
            time_cell(result),
            *(cell(result, side, key) for side, key in columns),
            ensemble_cell(result),
            *(cell(result, side) for side in BASELINES),
            vs_optuna[0],
            vs_baseline[0],
            notes(result),
        ]
        lines.append(_row(cells))
    return lines, met


def _count(flags: list[bool | None]) -> str:
    known = [f for f in flags if f is not None]
    return f"{sum(known)} of {len(known)} tables" if known else "no table measured"


def baseline_tables_needed(tables: int) -> int:
    """The baseline target: at least three of four tables (the same share of fewer)."""
    return math.ceil(3 * tables / 4)


def targets(results: list[dict[str, Any]], met: dict[str, list[bool | None]]) -> list[str]:
    names = [r["table"] for r in results]
    missed = [n for n, f in zip(names, met["optuna"], strict=True) if f is False]
    known = [f for f in met["optuna"] if f is not None]
    every = "-" if not known else "**missed** on " + ", ".join(missed) if missed else "met"
    beaten = [f for f in met["baseline"] if f is not None]
    need = baseline_tables_needed(len(results))
    enough = "-" if not beaten else "met" if sum(beaten) >= need else "**missed**"
    lines = [
        "Targets (the default job's model, mean over seeds):",
        f"- at or above Optuna on every table: {every} ({_count(met['optuna'])})",
        f"- at or above the better baseline on at least {need} of {len(results)} tables: "
        f"{enough} ({_count(met['baseline'])})",
        f"- for information, its best single trial (without the ensemble): at or above "
        f"Optuna on {_count(met['trial_optuna'])}, at or above the better baseline on "
        f"{_count(met['trial_baseline'])}",
    ]
    if ran(results, "hyperband"):
        lines.append(
            f"- for information, the hyperband job: at or above Optuna on "
            f"{_count(met['hyperband_optuna'])}, at or above the better baseline on "
            f"{_count(met['hyperband_baseline'])}"
        )
    return lines


def _job_cell(run: Any) -> str:
    if not isinstance(run, dict):
        return "-"
    if run.get("unavailable"):
        return "not available"
    if run.get("test_score") is None:
        return f"failed: {run.get('error') or run.get('status')}"
    text = f"{run['test_score']:.4f}"
    ensemble = run.get("ensemble") or {}
    if ensemble.get("used"):
        text += f" (ensemble of {ensemble['members']})"
    trials = run.get("trials_completed")
    return text + (f"; {_n(trials, 'trial')}" if trials is not None else "")


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _optuna_cell(run: Any) -> str:
    if not isinstance(run, dict):
        return "-"
    if run.get("test_score") is None:
        return f"failed: {run.get('error')}"
    trials = run.get("trials_completed")
    budget = run.get("budget_s")
    extra = ", ".join(
        x
        for x in (
            _n(trials, "trial") if trials is not None else "",
            f"timeout {budget:.0f} s" if budget else "",
        )
        if x
    )
    return f"{run['test_score']:.4f} ({extra})" if extra else f"{run['test_score']:.4f}"


def _time(run: Any) -> str:
    if not isinstance(run, dict) or not run.get("job_id"):
        return "-"
    budget = run.get("budget_s")
    wall = run.get("wall_s")
    text = f"{budget:.0f} s ({run.get('budget_source')})" if budget else "none"
    return text + (f", wall {wall:.0f} s" if wall is not None else "")


def per_seed(results: list[dict[str, Any]]) -> list[str]:
    hyperband = ran(results, "hyperband")
    header = ["table", "seed", "default job: budget, wall", "job's model", "best single trial"]
    header += ["Optuna", *(["hyperband job"] if hyperband else []), *BASELINES.values()]
    header.append("checks")
    lines = [_row(header), "|" + "---|" * len(header)]
    for result in results:
        for seed, runs in result["seeds"].items():
            job = runs.get("default")
            trial = _score(job, "trial_test_score")
            cells = [result["table"], str(seed), _time(job), _job_cell(job)]
            cells.append("-" if trial is None else f"{trial:.4f}")
            cells.append(_optuna_cell(runs.get("optuna")))
            if hyperband:
                cells.append(_job_cell(runs.get("hyperband")))
            cells += ["-" if (s := _score(runs.get(b))) is None else f"{s:.4f}" for b in BASELINES]
            cells.append("; ".join(runs.get("checks", [])) or "same held-out rows")
            lines.append(_row(cells))
    return lines


def setup(args: argparse.Namespace) -> str:
    budget = (
        "its own time budget (max_runtime_s omitted: derived from the table, "
        'spec.derivation.budget_source "auto")'
        if args.budget is None
        else f"max_runtime_s {args.budget:g} s (--budget)"
    )
    return (
        "The default job as a user gets it: only dataset_id, tuner.seed and "
        f"training.test_split ({args.test_split:g}: the held-out rows), so {budget}. "
        "Optuna, in its own process after the job with nothing else running, gets the "
        "job's wall time (started_at to finished_at) as its timeout, and the job's space "
        f"and training. Seeds 1 to {args.seeds}; held out: {args.test_split:.0%} of each "
        "table's rows, the same rows for every side of a seed. Held-out accuracy, mean "
        "(min..max) over the seeds; the job's model is its ensemble where ensemble.used, "
        f"else its best trial. The service: {args.workers} worker(s), {args.threads} "
        "TensorFlow thread(s) per search process; Optuna: one process."
    )


def report(
    results: list[dict[str, Any]], args: argparse.Namespace, *, date: str, load: str, total_s: float
) -> str:
    versions = ", ".join(
        f"{name} {version(dist)}"
        for name, dist in (
            ("TensorFlow", "tensorflow"),
            ("KerasTuner", "keras-tuner"),
            ("Optuna", "optuna"),
            ("scikit-learn", "scikit-learn"),
        )
    )
    lines, met = summary(results)
    return "\n".join(
        [
            f"Machine: {machine()}; {versions}",
            f"Date: {date}; load average (1/5/15 min): {load}; total {total_s / 60:.1f} min",
            setup(args),
            "",
            *lines,
            "",
            *targets(results, met),
            "",
            "Per seed (held-out accuracy):",
            "",
            *per_seed(results),
        ]
    )
