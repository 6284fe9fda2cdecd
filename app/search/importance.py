"""Which hyperparameters mattered: Optuna's PED-ANOVA over a job's completed trials.

Any algorithm's trials will do: each stored trial becomes an Optuna `FrozenTrial` whose
distributions come from the job's effective search space, through the same KerasTuner
config the search ran with (`keras_tuner_config`), so `units_<i>` of a layer a trial did
not have is an inactive conditional parameter, as it was in the search.

PED-ANOVA (`optuna.importance.PedAnovaImportanceEvaluator`), not fANOVA: fANOVA fits a
scikit-learn random forest, and the API does not depend on scikit-learn. Optuna is
imported when an importance is first computed, never when the API starts (`app.main`
stays light; optuna.importance also imports scikit-learn where it happens to be installed).
"""

from __future__ import annotations

import math
import threading
import warnings
from collections import OrderedDict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from app.errors import ProblemError
from app.search.keras_tuner_config import keras_tuner_config

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.trial import FrozenTrial

MIN_TRIALS = 5
METHOD = "ped_anova"
# PED-ANOVA compares the top quantile of trials with all of them; Optuna's notes ask for at
# least 5 trials in that top. 10% (its default) from 50 trials up, a larger share below.
TOP_TRIALS = 5
CACHE_SIZE = 128


class Importance(BaseModel):
    """How much each hyperparameter mattered to the score; the values sum to 1."""

    importances: dict[str, float] = Field(
        description="hyperparameter -> share of the importance, most important first"
    )
    method: str = Field(description="the evaluator: `ped_anova` (Optuna's PED-ANOVA)")
    trials: int = Field(description="how many completed trials with a finite score it used")


@dataclass(frozen=True)
class ScoredTrial:
    hyperparameters: dict[str, Any]
    score: float


def too_few(count: int) -> ProblemError:
    return ProblemError(
        409,
        f"hyperparameter importance needs at least {MIN_TRIALS} completed trials with a "
        f"score; this job has {count}",
        title="Too few trials",
    )


def _distribution(entry: dict[str, Any]) -> BaseDistribution | None:
    """The Optuna distribution of one KerasTuner hyperparameter config; None if it cannot vary."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    kind, config = entry["class_name"], entry["config"]
    if kind in ("Int", "Float"):
        low, high = config["min_value"], config["max_value"]
        if low == high:
            return None
        log = config.get("sampling") == "log"
        if kind == "Int":
            # With log sampling KerasTuner's step is a multiplier (pow2: 2): Optuna steps by 1.
            step = 1 if log or not config.get("step") else int(config["step"])
            if (high - low) % step:
                high = low + (high - low) // step * step  # what KerasTuner can reach
            return IntDistribution(int(low), int(high), log=log, step=step)
        # A stepped float as a continuous range: a stored 0.30000000000000004 would not be on
        # Optuna's grid, and the estimate does not need the grid.
        return FloatDistribution(float(low), float(high), log=log)
    if kind == "Choice":
        values = config["values"]
        return CategoricalDistribution(values) if len(values) > 1 else None
    if kind == "Boolean":
        return CategoricalDistribution([False, True])
    return None  # Fixed


def distributions(space: dict[str, dict[str, Any]]) -> dict[str, BaseDistribution]:
    """Every hyperparameter of the search space that can vary, as an Optuna distribution."""
    found = {}
    for entry in keras_tuner_config(space)["space"]:
        distribution = _distribution(entry)
        if distribution is not None:
            found[entry["config"]["name"]] = distribution
    return found


def _frozen(trial: ScoredTrial, known: dict[str, BaseDistribution]) -> FrozenTrial | None:
    """The trial as Optuna's, or None if a value lies outside the space (a warm-start trial
    from a job with another space): it would only mislead."""
    from optuna.trial import TrialState, create_trial

    params = {name: value for name, value in trial.hyperparameters.items() if name in known}
    try:  # create_trial checks each value against its distribution
        return create_trial(
            params=params,
            distributions={name: known[name] for name in params},
            value=trial.score,
            state=TrialState.COMPLETE,
        )
    except (TypeError, ValueError):
        return None


def hyperparameter_importance(
    space: dict[str, dict[str, Any]], trials: Iterable[ScoredTrial], *, maximize: bool
) -> Importance:
    """PED-ANOVA importance of each varying hyperparameter, normalized to sum to 1.

    Raises a 409 ProblemError below MIN_TRIALS usable trials or when nothing varied."""
    import optuna
    from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances

    known = distributions(space)
    usable = (_frozen(t, known) for t in trials if math.isfinite(t.score))
    frozen = [trial for trial in usable if trial is not None]
    if len(frozen) < MIN_TRIALS:
        raise too_few(len(frozen))
    if not any(t.params for t in frozen):
        raise ProblemError(
            409, "no hyperparameter of this job's search space varies", title="Nothing varied"
        )
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # "A new study created in memory"
    study = optuna.create_study(
        direction="maximize" if maximize else "minimize",
        storage=optuna.storages.InMemoryStorage(),
    )
    study.add_trials(frozen)
    quantile = min(0.5, max(0.1, TOP_TRIALS / len(frozen)))
    evaluator = PedAnovaImportanceEvaluator(target_quantile=quantile)
    with warnings.catch_warnings():
        # Few trials per regime of a conditional parameter, equal importances: expected
        # with a few dozen trials, and nothing a caller of the API can act on.
        warnings.simplefilter("ignore")
        shares = get_param_importances(study, evaluator=evaluator, normalize=True)
    ordered = sorted(shares.items(), key=lambda item: (-item[1], item[0]))
    return Importance(
        importances={name: float(value) for name, value in ordered},
        method=METHOD,
        trials=len(frozen),
    )


class ImportanceCache:
    """Each job's last importances and the version of its trials they were computed from
    (a key that changes when the job has new trials: how many completed trials it has, the
    latest one's end). One entry per job, at most `size` jobs: the least recently used goes
    first. Thread-safe: sync routes run in a thread pool."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self._size = size
        self._entries: OrderedDict[str, tuple[Hashable, Importance]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, job_id: str, version: Hashable) -> Importance | None:
        with self._lock:
            found = self._entries.get(job_id)
            if found is None or found[0] != version:
                return None
            self._entries.move_to_end(job_id)
            return found[1]

    def put(self, job_id: str, version: Hashable, value: Importance) -> None:
        with self._lock:
            self._entries[job_id] = (version, value)
            self._entries.move_to_end(job_id)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
