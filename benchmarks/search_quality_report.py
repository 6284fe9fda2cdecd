"""The tables `make bench-search` prints (Markdown, pasted into docs/benchmarks.md as is).

One row per table: each side's held-out score, mean and spread (sample standard
deviation) over the seeds, and the issue's two targets for the service's default job;
then one row per table and seed, with what the run checked.
"""

from __future__ import annotations

import argparse
import statistics
from importlib.metadata import version
from typing import Any

from benchmarks.__main__ import machine

SEARCHES = {
    "default": "service default",
    "hyperband": "service hyperband",
    "optuna": "Optuna (TPE + Hyperband)",
}
BASELINES = {"linear": "logistic regression", "gradient_boosting": "gradient boosting"}
# The sides that are service jobs, with the algorithm each asks for (None: the default).
SERVICE_JOBS = {"default": None, "hyperband": "hyperband"}


def _score(run: Any) -> float | None:
    if isinstance(run, float | int):
        return float(run)
    return run.get("test_score") if isinstance(run, dict) else None


def scores(result: dict[str, Any], side: str) -> list[float]:
    found = (_score(runs.get(side)) for runs in result["seeds"].values())
    return [s for s in found if s is not None]


def mean(result: dict[str, Any], side: str) -> float | None:
    got = scores(result, side)
    return statistics.fmean(got) if got else None


def _why_missing(result: dict[str, Any], side: str) -> str:
    for runs in result["seeds"].values():
        run = runs.get(side)
        if isinstance(run, dict) and run.get("unavailable"):
            return "not available"
    return (
        "not run"
        if all(side not in runs or runs[side] is None for runs in result["seeds"].values())
        else "failed"
    )


def cell(result: dict[str, Any], side: str) -> str:
    got = scores(result, side)
    if not got:
        return _why_missing(result, side)
    spread = statistics.stdev(got) if len(got) > 1 else 0.0
    text = f"{statistics.fmean(got):.4f} ± {spread:.4f}"
    seeds = len(result["seeds"])
    return text if len(got) == seeds else f"{text} ({len(got)} of {seeds} seeds)"


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
    runs = [r[side] for r in result["seeds"].values() if isinstance(r.get(side), dict)]
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
    trials = {side: _trials(result, side) for side in SEARCHES}
    if any(trials.values()):
        parts.append("trials completed: " + ", ".join(f"{s} {t}" for s, t in trials.items() if t))
    jobs = [r.get(s) for r in result["seeds"].values() for s in SERVICE_JOBS]
    jobs = [j for j in jobs if isinstance(j, dict) and j.get("status")]
    folds = {
        f"{j['cross_validation'].get('folds')} folds"
        if isinstance(j["cross_validation"], dict)
        else str(j["cross_validation"])
        for j in jobs
        if j.get("cross_validation")
    }
    if folds:
        parts.append(f"service cross-validation: {', '.join(sorted(folds))}")
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


def summary(results: list[dict[str, Any]]) -> tuple[list[str], dict[str, list[bool | None]]]:
    header = ["table", "rows (train/val/test)", *SEARCHES.values(), *BASELINES.values()]
    header += ["default >= Optuna", "default >= better baseline", "notes"]
    lines = [_row(header), "|" + "---|" * len(header)]
    met: dict[str, list[bool | None]] = {
        "optuna": [],
        "baseline": [],
        "hyperband_optuna": [],
        "hyperband_baseline": [],
    }
    for result in results:
        rows = result["rows"]
        best = better_baseline(result)
        base = (best[1], f" vs {BASELINES[best[0]]}") if best else (None, "")
        vs_optuna = verdict(mean(result, "default"), mean(result, "optuna"))
        vs_baseline = verdict(mean(result, "default"), base[0], base[1])
        met["optuna"].append(vs_optuna[1])
        met["baseline"].append(vs_baseline[1])
        hyperband = mean(result, "hyperband")
        met["hyperband_optuna"].append(verdict(hyperband, mean(result, "optuna"))[1])
        met["hyperband_baseline"].append(verdict(hyperband, base[0])[1])
        cells = [
            f"{result['table']} ({result['classes']} classes)",
            _rows(rows),
            *(cell(result, side) for side in SEARCHES),
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


def targets(results: list[dict[str, Any]], met: dict[str, list[bool | None]]) -> list[str]:
    names = [r["table"] for r in results]
    missed = [n for n, f in zip(names, met["optuna"], strict=True) if f is False]
    known = [f for f in met["optuna"] if f is not None]
    every = "-" if not known else "**missed** on " + ", ".join(missed) if missed else "met"
    beaten = [f for f in met["baseline"] if f is not None]
    two = "-" if not beaten else "met" if sum(beaten) >= 2 else "**missed**"
    return [
        "Targets (the service's default job, mean over seeds):",
        f"- at or above Optuna on every table: {every} ({_count(met['optuna'])})",
        f"- at or above the better baseline on at least two tables: {two} "
        f"({_count(met['baseline'])})",
        f"- for information, hyperband (the default without a time budget): at or above "
        f"Optuna on {_count(met['hyperband_optuna'])}, at or above the better baseline on "
        f"{_count(met['hyperband_baseline'])}",
    ]


def _seed_cell(run: Any) -> str:
    if isinstance(run, float | int):
        return f"{run:.4f}"
    if not isinstance(run, dict):
        return "-"
    if run.get("unavailable"):
        return "not available"
    if run.get("test_score") is None:
        return f"failed: {run.get('error') or run.get('status')}"
    trials = run.get("trials_completed")
    wall = run.get("wall_s", run.get("search_s"))
    extra = ", ".join(
        x
        for x in (f"{trials} trials" if trials is not None else "", f"{wall:.0f} s" if wall else "")
        if x
    )
    return f"{run['test_score']:.4f} ({extra})" if extra else f"{run['test_score']:.4f}"


def per_seed(results: list[dict[str, Any]]) -> list[str]:
    header = ["table", "seed", *SEARCHES.values(), *BASELINES.values(), "checks"]
    lines = [_row(header), "|" + "---|" * len(header)]
    for result in results:
        for seed, runs in result["seeds"].items():
            cells = [result["table"], str(seed)]
            cells += [_seed_cell(runs.get(side)) for side in (*SEARCHES, *BASELINES)]
            cells.append("; ".join(runs.get("checks", [])) or "same held-out rows")
            lines.append(_row(cells))
    return lines


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
            f"Each search {args.budget:.0f} s (max_runtime_s / timeout); seeds 1 to {args.seeds}; "
            f"held out: {args.test_split:.0%} of each table's rows, the same rows for every "
            "side of a seed. Held-out accuracy, mean ± standard deviation over the seeds. "
            f"The service: {args.workers} worker(s), {args.threads} TensorFlow thread(s) per "
            "search process; Optuna: one process.",
            "",
            *lines,
            "",
            *targets(results, met),
            "",
            "Per seed (held-out accuracy; trials completed, search wall time):",
            "",
            *per_seed(results),
        ]
    )
