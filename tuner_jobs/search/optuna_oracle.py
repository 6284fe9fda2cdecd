"""Optuna's samplers as a KerasTuner Oracle: `tpe` (TPESampler) and `nsga2` (NSGAIISampler).

KerasTuner stays in charge of the search (trial ids, files, retries, resume, the gRPC
chief of a parallel job); only the choice of the next configuration is Optuna's. The
oracle holds an in-memory Optuna study: `populate_space` asks it for a trial and suggests
each active hyperparameter, translated from KerasTuner's HyperParameters (`_Param`);
`end_trial` tells it the result. A multi-objective job (app.search.objectives) gives
KerasTuner one scalar, its first objective (its score, what early stopping, checkpoints
and median pruning follow), and Optuna the whole vector: a study with one direction per
objective, whose Pareto front the service keeps (tuner_jobs.search.front_models).

Resume: KerasTuner reloads its trials from the project directory; `reload` then builds a
fresh study from the COMPLETED ones (optuna.trial.create_trial + study.add_trial), so no
finished trial is lost. The trial that was running reruns from KerasTuner's retry queue
under its own id, and is added to the study when it ends: none is asked twice. The
rebuilt sampler is seeded with the job's seed plus the trials created so far, so it does
not redraw the first configurations either. Read for optuna 4.x.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import keras_tuner as kt
import optuna
from keras_tuner.engine import hyperparameters as hp_types
from keras_tuner.engine import trial as trial_module
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState

from app.search.pareto import non_dominated, rank_key
from tuner_jobs.search.warm_start import next_warm_start

logger = logging.getLogger(__name__)

Status = trial_module.TrialStatus
# Optuna logs every trial at INFO and warns that these sampler options are experimental.
optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

# Draws in a row that repeat a configuration already tried before the space counts as
# exhausted (KerasTuner's own oracles allow as many).
MAX_COLLISIONS = 20


class _Param:
    """One KerasTuner hyperparameter as an Optuna distribution. KerasTuner's stepped log
    ranges (pow2 units: 8, 16, 32, ...) have no Optuna equivalent (a log IntDistribution
    takes step 1 only): Optuna searches the step's index there, an Int from 0."""

    def __init__(self, hp: Any) -> None:
        self.name = hp.name
        self.fixed = isinstance(hp, hp_types.Fixed)
        self.value: Any = hp.value if self.fixed else None
        self.base: float = 0.0
        self.ratio: float | None = None  # the multiplicative step of a stepped log range
        self.integer = isinstance(hp, hp_types.Int)
        self.distribution: BaseDistribution | None = None
        if self.fixed:
            return
        if isinstance(hp, hp_types.Boolean):
            self.distribution = CategoricalDistribution([False, True])
        elif isinstance(hp, hp_types.Choice):
            self.distribution = CategoricalDistribution(list(hp.values))
        elif isinstance(hp, hp_types.Int | hp_types.Float):
            self.distribution = self._numeric(hp)
        else:
            raise ValueError(f"hyperparameter {hp.name!r}: {type(hp).__name__} is not supported")

    def _numeric(self, hp: Any) -> BaseDistribution:
        low, high, step, sampling = hp.min_value, hp.max_value, hp.step, hp.sampling
        if sampling not in ("linear", "log"):
            raise ValueError(f"hyperparameter {hp.name!r}: sampling {sampling!r} is not supported")
        if sampling == "log" and step is not None:
            self.base, self.ratio = float(low), float(step)
            count = int(math.log(high / low, step) + 1e-8) + 1
            return IntDistribution(0, count - 1)
        if self.integer:
            step = int(step or 1)
            high = low + (high - low) // step * step  # Optuna wants the top on the grid
            return IntDistribution(int(low), int(high), log=sampling == "log", step=step)
        if step is not None:
            high = low + math.floor((high - low) / step + 1e-9) * step
        return FloatDistribution(low, high, log=sampling == "log", step=step)

    def suggest(self, trial: optuna.Trial) -> Any:
        """The value for this trial, as KerasTuner holds it."""
        dist = self.distribution
        if dist is None:
            return self.value
        if isinstance(dist, CategoricalDistribution):
            return trial.suggest_categorical(self.name, dist.choices)  # type: ignore[arg-type]
        if isinstance(dist, IntDistribution):
            drawn: Any = trial.suggest_int(
                self.name, dist.low, dist.high, step=dist.step, log=dist.log
            )
        else:
            assert isinstance(dist, FloatDistribution)
            drawn = trial.suggest_float(
                self.name, dist.low, dist.high, step=dist.step, log=dist.log
            )
        return self.decode(drawn)

    def decode(self, drawn: Any) -> Any:
        if self.ratio is None:
            return drawn
        value = self.base * self.ratio**drawn
        return round(value) if self.integer else value

    def encode(self, value: Any) -> Any:
        """A KerasTuner value as Optuna's parameter (its inverse of `decode`)."""
        if self.ratio is None:
            return value
        return round(math.log(float(value) / self.base, self.ratio))


def _sampler(name: str, seed: int, max_trials: int | None) -> optuna.samplers.BaseSampler:
    if name == "tpe":
        # Multivariate TPE models the parameters jointly; `group` splits the space by
        # which parameters a trial has (units_1 exists only with two layers or more);
        # the constant liar keeps parallel tuners from all being told the same point.
        return optuna.samplers.TPESampler(
            multivariate=True, group=True, constant_liar=True, seed=seed
        )
    if name == "nsga2":
        # Optuna's default population (50) would spend a 20-trial budget on one random
        # generation: a third of the budget per generation lets it evolve.
        population = min(50, max(4, (max_trials or 50) // 3))
        return optuna.samplers.NSGAIISampler(population_size=population, seed=seed)
    raise ValueError(f"unknown Optuna sampler {name!r}")


def _jsonable(attrs: dict[str, Any]) -> dict[str, Any]:
    """The system attributes KerasTuner's JSON state can hold (the sampler's own notes)."""
    kept = {}
    for key, value in attrs.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            continue
        kept[key] = value
    return kept


class OptunaOracle(kt.Oracle):
    def __init__(
        self, *, sampler: str, objectives: Sequence[tuple[str, str]], **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.sampler_name = sampler
        self.objectives = list(objectives)  # (name, direction); the first is KerasTuner's
        self.directions = [direction for _name, direction in self.objectives]
        self._params = [_Param(hp) for hp in self.hyperparameters.space]
        self._asked: dict[str, optuna.Trial] = {}  # trial_id -> the study's trial
        self._attrs: dict[str, dict[str, Any]] = {}  # trial_id -> the sampler's notes on it
        self.study = self._new_study(self.seed)

    def _new_study(self, seed: int) -> optuna.Study:
        return optuna.create_study(
            directions=["maximize" if d == "max" else "minimize" for d in self.directions],
            sampler=_sampler(self.sampler_name, seed, self.max_trials),
        )

    # --- asking --------------------------------------------------------------------------

    def _key(self, values: dict[str, Any]) -> str:
        declared = {param.name for param in self._params}
        return json.dumps({k: v for k, v in values.items() if k in declared}, sort_keys=True)

    def populate_space(self, trial_id: str) -> dict[str, Any]:
        # Warm-start configurations first (tuner_jobs.search.warm_start); the study learns
        # of each when it ends (`_tell` adds trials it did not ask for).
        queued = next_warm_start(self)
        if queued is not None:
            return {"status": Status.RUNNING, "values": queued}
        tried = {self._key(trial.hyperparameters.values) for trial in self.trials.values()}
        for _ in range(MAX_COLLISIONS + 1):
            asked = self.study.ask()
            values = self._suggest(asked)
            if self._key(values) not in tried:
                self._asked[trial_id] = asked
                return {"status": Status.RUNNING, "values": values}
            # A repeat of a configuration that ran (or runs): KerasTuner's oracles draw
            # again; the study is told this draw failed, so it is not counted twice.
            self.study.tell(asked, state=TrialState.FAIL)
        return {"status": Status.STOPPED}  # the space is exhausted

    def _suggest(self, asked: optuna.Trial) -> dict[str, Any]:
        """Values for every hyperparameter active given those before it (as KerasTuner's
        own random draw walks the space: units_1 only once num_layers allows it)."""
        hps = kt.HyperParameters()
        for hp, param in zip(self.hyperparameters.space, self._params, strict=True):
            hps.merge([hp])
            if hps.is_active(hp):
                hps.values[hp.name] = param.suggest(asked)
        return dict(hps.values)

    # --- telling -------------------------------------------------------------------------

    def objective_values(self, trial: Any) -> list[float | None]:
        """The trial's value of each objective, at its best epoch (KerasTuner records the
        metrics of that epoch, the measured ones included)."""
        return objective_values(trial, [name for name, _ in self.objectives])

    @kt.synchronized
    def end_trial(self, trial: Any) -> None:
        try:
            super().end_trial(trial)
        finally:
            self._tell(self.trials[trial.trial_id])

    def _tell(self, trial: Any) -> None:
        if trial.status == Status.INVALID:
            return  # queued for a retry: told when the retry ends
        if trial.status not in (Status.COMPLETED, Status.FAILED):
            return
        values = self.objective_values(trial) if trial.status == Status.COMPLETED else None
        complete = values is not None and all(_finite(v) for v in values)
        state = TrialState.COMPLETE if complete else TrialState.FAIL
        told = values if complete else None
        asked = self._asked.pop(trial.trial_id, None)
        if asked is None:
            # Not asked by this study: a warm-started trial, or one that was running when
            # the search was interrupted and reran from KerasTuner's retry queue.
            frozen = self._frozen(trial, state, told)
            if frozen is None:
                return
            self.study.add_trial(frozen)
            return
        result = self.study.tell(asked, told, state=state)
        self._attrs[trial.trial_id] = _jsonable(result.system_attrs)

    def _frozen(
        self, trial: Any, state: TrialState, values: list[float | None] | None
    ) -> optuna.trial.FrozenTrial | None:
        params, distributions = {}, {}
        for param in self._params:
            if param.distribution is None or param.name not in trial.hyperparameters.values:
                continue
            params[param.name] = param.encode(trial.hyperparameters.values[param.name])
            distributions[param.name] = param.distribution
        try:
            return optuna.trial.create_trial(
                state=state,
                values=values,
                params=params,
                distributions=distributions,
                system_attrs=self._attrs.get(trial.trial_id),
            )
        except ValueError as exc:  # a value outside today's space (an edited warm start)
            logger.warning(
                "trial not given to the sampler",
                extra={"trial_id": trial.trial_id, "error": str(exc)},
            )
            return None

    # --- resume --------------------------------------------------------------------------

    def reload(self) -> None:
        super().reload()
        self.study = self._new_study(self.seed + len(self.trials))
        self._asked = {}
        for trial_id in self.start_order:
            trial = self.trials.get(trial_id)
            if trial is not None and trial.status == Status.COMPLETED:
                values = self.objective_values(trial)
                if all(_finite(v) for v in values):
                    frozen = self._frozen(trial, TrialState.COMPLETE, values)
                    if frozen is not None:
                        self.study.add_trial(frozen)
        logger.info(
            "optuna study rebuilt",
            extra={"trials": len(self.study.trials), "sampler": self.sampler_name},
        )

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        state["optuna_system_attrs"] = self._attrs
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self._attrs = dict(state.get("optuna_system_attrs") or {})

    # --- best trials and the front ---------------------------------------------------------

    def get_best_trials(self, num_trials: int = 1) -> list[Any]:
        """Single objective: KerasTuner's ranking. Several: by the first objective, ties
        broken by the next (app.search.pareto.rank_key), so the best is on the front."""
        if len(self.objectives) == 1:
            return super().get_best_trials(num_trials)  # type: ignore[no-any-return]
        completed = [t for t in self.trials.values() if t.status == Status.COMPLETED]
        ranked = sorted(
            completed, key=lambda t: rank_key(self.objective_values(t), self.directions)
        )
        rest = [t for t in self.trials.values() if t.status != Status.COMPLETED]
        return (ranked + rest)[:num_trials]

    def front_trial_ids(self) -> set[str]:
        """The completed trials on the Pareto front (none for a single objective: the best
        model is the job's only one)."""
        if len(self.objectives) == 1:
            return set()
        points = {
            t.trial_id: self.objective_values(t)
            for t in self.trials.values()
            if t.status == Status.COMPLETED
        }
        return set(non_dominated(points, self.directions))


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def objective_values(trial: Any, names: Sequence[str]) -> list[float | None]:
    """`names`' values in a KerasTuner trial's metrics (one observation each: the best
    epoch's, averaged over executions); None for one it lacks."""
    out: list[float | None] = []
    for name in names:
        value = trial.metrics.get_last_value(name) if trial.metrics.exists(name) else None
        out.append(None if value is None or not math.isfinite(value) else float(value))
    return out


def objectives_of(oracle: Any, trial: Any) -> dict[str, float | None] | None:
    """A multi-objective oracle's values of a COMPLETED trial, by name; else None."""
    names = [name for name, _ in getattr(oracle, "objectives", ())]
    if len(names) < 2 or trial.status != Status.COMPLETED:
        return None
    return dict(zip(names, objective_values(trial, names), strict=True))


def front_trial_ids(oracle: Any) -> set[str]:
    """The oracle's Pareto front, or nothing for an oracle that keeps none."""
    front: Callable[[], set[str]] | None = getattr(oracle, "front_trial_ids", None)
    return front() if front is not None else set()
