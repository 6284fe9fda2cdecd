"""Warm starts: the best configurations of earlier jobs, tried first by a new one.

Resolved once, at submission: the jobs are looked up (through a `WarmStartSource`, which
app.store implements: this package knows no storage), their best COMPLETED trials taken
by each job's own objective and direction, and each configuration checked against the new
job's effective search space. The list that fits is stored in the job's spec
(`warm_start.configurations`), so the search process reads no other job and a resumed
search replays the same list (tuner_jobs.search.warm_start hands it out).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import zip_longest
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from app.errors import ProblemError
from app.search.keras_tuner_config import keras_tuner_config

# "auto": the owner's most recent succeeded jobs on the same data, top_k of each.
AUTO_JOBS = 5
DEFAULT_TOP_K = 5
MAX_TOP_K = 100
MAX_JOBS = 10
# Float steps and bounds are compared with this much slack: a stepped value another search
# drew is min + k * step in floating point (0.30000000000000004), not the decimal.
TOLERANCE = 1e-9


class WarmStartSpec(BaseModel):
    """What a user asks for: the jobs whose best configurations to try first."""

    model_config = ConfigDict(extra="forbid")

    jobs: list[str] = Field(
        min_length=1,
        max_length=MAX_JOBS,
        description="earlier jobs (readable by the caller) whose best trials to try first",
    )
    top_k: int = Field(
        default=DEFAULT_TOP_K,
        ge=1,
        le=MAX_TOP_K,
        description="how many of each job's best completed trials",
    )


class WarmStartConfiguration(BaseModel):
    job_id: str
    trial_id: str
    score: float
    hyperparameters: dict[str, Any]


class SkippedConfigurations(BaseModel):
    count: int = 0
    reason: str | None = Field(
        default=None, description="why, in short; each skipped trial's own reason below"
    )
    trials: list[dict[str, str]] = Field(
        default_factory=list, description="{job_id, trial_id, reason} per skipped trial"
    )


class ResolvedWarmStart(WarmStartSpec):
    """The warm start as stored: the jobs it drew from and the configurations to try, in
    the order the oracle hands them out."""

    auto: bool = Field(default=False, description='resolved from warm_start: "auto"')
    # "auto" may find no earlier job: an empty list, then.
    jobs: list[str] = Field(default_factory=list, max_length=MAX_JOBS)
    configurations: list[WarmStartConfiguration] = Field(default_factory=list)
    skipped: SkippedConfigurations = Field(default_factory=SkippedConfigurations)


@dataclass(frozen=True)
class SourceJob:
    id: str
    objective: str
    direction: Literal["min", "max"]


@dataclass(frozen=True)
class SourceTrial:
    trial_id: str
    score: float
    hyperparameters: dict[str, Any]


class WarmStartSource(Protocol):
    """The reads a warm start needs, scoped to the caller (app.store.warm_start_reads)."""

    def jobs(self, ids: Sequence[str]) -> dict[str, SourceJob]:
        """Those of `ids` the caller may read; another key's are as absent as unknown ones."""
        ...

    def recent_jobs(self, limit: int) -> list[SourceJob]:
        """The caller's latest succeeded jobs on the new job's data, newest first."""
        ...

    def best_trials(self, job: SourceJob, limit: int) -> list[SourceTrial]:
        """The job's best COMPLETED trials with a score, by its own direction."""
        ...


def resolve_warm_start(
    requested: WarmStartSpec | Literal["auto"] | None,
    *,
    space: dict[str, dict[str, Any]],
    source: WarmStartSource | None,
) -> ResolvedWarmStart | None:
    """The configurations to try first; raises a 422 naming `warm_start.jobs` for a job
    that does not exist or is not the caller's (the same answer for both)."""
    if requested is None:
        return None
    if source is None:
        raise ValueError("a warm start needs a source to read its jobs from")
    if requested == "auto":
        jobs = source.recent_jobs(AUTO_JOBS)
        resolved = ResolvedWarmStart(auto=True, jobs=[job.id for job in jobs])
    else:
        ids = list(dict.fromkeys(requested.jobs))
        found = source.jobs(ids)
        _check_found(requested.jobs, found)
        jobs = [found[job_id] for job_id in ids]
        resolved = ResolvedWarmStart(jobs=ids, top_k=requested.top_k)
    picked = [[(job, trial) for trial in source.best_trials(job, resolved.top_k)] for job in jobs]
    # Round robin over the jobs, each best first: with a small trial budget every job's
    # best still gets tried.
    ordered: list[tuple[SourceJob, SourceTrial]] = []
    for row in zip_longest(*picked):
        ordered.extend(pair for pair in row if pair is not None)
    kept: list[WarmStartConfiguration] = []
    skipped: list[dict[str, str]] = []
    for job, trial in ordered:
        values, problem = fit_to_space(trial.hyperparameters, space)
        if problem is None and any(c.hyperparameters == values for c in kept):
            problem = "the same configuration as an earlier one"
        if problem is not None:
            skipped.append({"job_id": job.id, "trial_id": trial.trial_id, "reason": problem})
            continue
        kept.append(
            WarmStartConfiguration(
                job_id=job.id, trial_id=trial.trial_id, score=trial.score, hyperparameters=values
            )
        )
    resolved.configurations = kept
    resolved.skipped = SkippedConfigurations(
        count=len(skipped), reason=_summary(skipped, len(ordered)), trials=skipped
    )
    return resolved


def _check_found(requested: list[str], found: dict[str, SourceJob]) -> None:
    errors = [
        {
            "loc": ["body", "warm_start", "jobs", index],
            "msg": f"job {job_id!r} does not exist",
            "type": "value",
        }
        for index, job_id in enumerate(requested)
        if job_id not in found
    ]
    if errors:
        detail = "; ".join(f"warm_start.jobs.{e['loc'][3]}: {e['msg']}" for e in errors[:MAX_JOBS])
        raise ProblemError(422, detail, title="Invalid input", errors=errors)


def _summary(skipped: list[dict[str, str]], total: int) -> str | None:
    if not skipped:
        return None
    reasons = list(dict.fromkeys(s["reason"] for s in skipped))
    shown = "; ".join(reasons[:3]) + ("; ..." if len(reasons) > 3 else "")
    return f"{len(skipped)} of {total} configurations skipped: {shown}"


# --- Does a configuration fit a search space? ----------------------------------------------


def fit_to_space(
    values: dict[str, Any], space: dict[str, dict[str, Any]]
) -> tuple[dict[str, Any], str | None]:
    """The configuration with each value as this space's KerasTuner hyperparameter holds
    it (an int for an Int, the listed value for a Choice), or the reason it does not fit:
    a value the space does not allow, or a hyperparameter it lacks or does not have.

    Read against `keras_tuner_config(space)`, the HyperParameters the search builds, so
    the check and the search agree on names (units_<i> per layer) and on which values
    are active (a layer's width only when the network has that layer)."""
    fitted: dict[str, Any] = {}
    for entry in keras_tuner_config(space)["space"]:
        config = entry["config"]
        name = config["name"]
        if not all(
            fitted.get(c["config"]["name"]) in c["config"]["values"] for c in config["conditions"]
        ):
            continue  # inactive in this configuration (a layer it does not have)
        if name not in values:
            if entry["class_name"] != "Fixed":
                return {}, f"it has no value for {name}"
            fitted[name] = config["value"]  # a hyperparameter added since: fixed here
            continue
        value, problem = _allowed(entry["class_name"], config, values[name])
        if problem is not None:
            return {}, f"{name}={values[name]!r} {problem}"
        fitted[name] = value
    extra = sorted(set(values) - set(fitted))
    if extra:
        return {}, f"this job's search space has no {', '.join(extra)}"
    return fitted, None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _on_steps(value: float, low: float, step: float | None, sampling: str) -> bool:
    if step is None:
        return True
    steps = math.log(value / low, step) if sampling == "log" else (value - low) / step
    return abs(steps - round(steps)) <= TOLERANCE * max(1.0, abs(steps))


def _allowed(kind: str, config: dict[str, Any], value: Any) -> tuple[Any, str | None]:
    """`value` as the hyperparameter holds it, or why it is not one of its values."""
    if kind == "Fixed":
        fixed = config["value"]
        same = isinstance(value, bool) == isinstance(fixed, bool) and value == fixed
        return (fixed, None) if same else (None, f"is not the fixed value {fixed!r}")
    if kind == "Boolean":
        return (value, None) if isinstance(value, bool) else (None, "is not true or false")
    if kind == "Choice":
        for option in config["values"]:
            if isinstance(option, bool) == isinstance(value, bool) and option == value:
                if isinstance(option, str) == isinstance(value, str):
                    return option, None
        return None, f"is not one of {config['values']}"
    low, high = config["min_value"], config["max_value"]
    step, sampling = config["step"], config["sampling"]
    if not _number(value):
        return None, "is not a number"
    if kind == "Int" and not float(value).is_integer():
        return None, "is not a whole number"
    slack = TOLERANCE * max(1.0, abs(low), abs(high))
    if not low - slack <= value <= high + slack:
        return None, f"is outside [{low}, {high}]"
    if not _on_steps(value, low, step, sampling):
        return None, f"is not on the steps of {step} from {low}"
    return (int(value) if kind == "Int" else float(value)), None
