"""The sections of a job spec (tuner, objective, training, callbacks, pruning): the
pydantic models app.search.spec's JobCreate and ResolvedSpec are made of, each with its
own defaults and bounds. No resolution happens here (app.search.spec.resolve_spec)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# tpe and nsga2: Optuna's samplers as KerasTuner oracles (tuner_jobs.search.optuna_oracle).
Algorithm = Literal["random_search", "hyperband", "bayesian", "grid", "tpe", "nsga2"]
Direction = Literal["min", "max"]


class SpecModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TunerSpec(SpecModel):
    algorithm: Algorithm | None = Field(
        default=None,
        description="Omitted: hyperband, or tpe when the job has a time budget "
        "(max_runtime_s), which it then searches to its end. The resolved spec shows the "
        "algorithm chosen.",
    )
    max_trials: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description="Trial budget. Defaults to 20 (under a time budget: as many as the budget "
        "allows, up to 1,000), except Hyperband, which runs its full schedule (set by "
        "max_epochs and factor) unless a cap is given.",
    )
    max_epochs: int | None = Field(
        default=None, ge=1, le=10_000, description="Hyperband only; defaults to training.epochs"
    )
    min_epochs: int | None = Field(
        default=None,
        ge=1,
        le=10_000,
        description="Hyperband only: the epochs of its smallest rung (its most exploratory "
        "bracket). Omitted: derived from the steps an epoch takes, long enough to rank "
        "configurations rather than score them at chance.",
    )
    factor: int = Field(default=3, ge=2, le=100, description="Hyperband reduction factor")
    hyperband_iterations: int = Field(default=1, ge=1, le=100)
    executions_per_trial: int = Field(default=1, ge=1, le=20)
    seed: int | None = Field(
        default=None,
        ge=0,
        le=2**31 - 1,
        description="Omitted (or null): a seed is drawn at submission and recorded in the "
        "job's spec, so each job explores afresh and resubmitting with it reproduces.",
    )


class ObjectiveSpec(SpecModel):
    name: str | None = Field(default=None, description="val_accuracy / val_loss by task")
    direction: Direction | None = None
    direction_override: bool = Field(
        default=False, description="allow a direction that contradicts the metric (val_loss: max)"
    )


class CrossValidationSpec(SpecModel):
    folds: int = Field(ge=2, le=10)


class EnsembleSpec(SpecModel):
    max_members: int = Field(ge=2, le=50, description="the most trials in the ensemble")


class TrainingSpec(SpecModel):
    epochs: int = Field(
        default=30,
        ge=1,
        le=10_000,
        description="Each trial's epoch cap (early stopping usually ends it first). Omitted: "
        "derived from the gradient steps an epoch takes on this table (the resolved spec's "
        "derivation shows them).",
    )
    validation_split: float = Field(default=0.2, gt=0, lt=1)
    test_split: float = Field(
        default=0.0,
        ge=0,
        lt=0.5,
        description="Rows held out before anything else, never seen by the search; the best "
        "model is scored on them at the end (best.test_score, best.test_metrics).",
    )
    cross_validation: CrossValidationSpec | Literal["auto"] | None = Field(
        default="auto",
        description='{"folds": k} (2 to 10): each trial trains k times, its score the mean '
        "over the folds (stratified by class), and the best configuration is refit on every "
        'training row; null: one validation split (validation_split); "auto": 5 folds '
        "below 1,000 training rows (rows after the test split), else one split.",
    )
    ensemble: EnsembleSpec | Literal["auto"] | None = Field(
        default="auto",
        description="After the search, greedy ensemble selection (Caruana et al.) on the "
        "trials' out-of-fold predictions: the weighted ensemble is the job's model when it "
        'scores above the best trial on the same folds. "auto": up to 10 members; '
        '{"max_members": k} (2 to 50); null: none.',
    )

    @field_validator("ensemble", mode="wrap")
    @classmethod
    def _ensemble_error_names_the_field(cls, value: Any, handler: Any) -> Any:
        # As cross_validation's: an error names training.ensemble.max_members.
        return EnsembleSpec.model_validate(value) if isinstance(value, dict) else handler(value)

    @property
    def ensemble_members(self) -> int | None:
        """The most members the ensemble may have; None: no ensemble."""
        if self.ensemble == "auto":
            return 10
        return None if self.ensemble is None else self.ensemble.max_members

    @field_validator("cross_validation", mode="wrap")
    @classmethod
    def _folds_error_names_the_field(cls, value: Any, handler: Any) -> Any:
        # Validated directly, not as one member of the union: an error then names
        # training.cross_validation.folds, not the union's member.
        if isinstance(value, dict):
            return CrossValidationSpec.model_validate(value)
        return handler(value)


class ResolvedTraining(TrainingSpec):
    """As stored: "auto" decided. A spec stored before cross-validation (or before
    ensembles) runs as it did."""

    cross_validation: CrossValidationSpec | None = None
    ensemble: EnsembleSpec | Literal["auto"] | None = None

    @property
    def folds(self) -> int | None:
        """Cross-validation's folds; None: one validation split."""
        return None if self.cross_validation is None else self.cross_validation.folds


class EarlyStoppingSpec(SpecModel):
    monitor: str = "val_loss"
    patience: int = Field(default=5, ge=0, le=10_000)
    min_delta: float = Field(default=0.0, ge=0)
    restore_best_weights: bool = True


class ReduceLROnPlateauSpec(SpecModel):
    monitor: str = "val_loss"
    factor: float = Field(default=0.1, gt=0, lt=1)
    patience: int = Field(default=3, ge=0, le=10_000)
    min_lr: float = Field(default=0.0, ge=0)
    min_delta: float = Field(default=1e-4, ge=0)


class CallbacksSpec(SpecModel):
    """`null` or `false` turns a callback off; an omitted one keeps its default."""

    early_stopping: EarlyStoppingSpec | None = Field(default_factory=EarlyStoppingSpec)
    reduce_lr_on_plateau: ReduceLROnPlateauSpec | None = None
    tensorboard: bool = False

    @field_validator("early_stopping", "reduce_lr_on_plateau", mode="before")
    @classmethod
    def _bool_switch(cls, value: Any, info: Any) -> Any:
        if value is False:
            return None
        if value is True:
            return {}
        return value


class PruningSpec(SpecModel):
    """Median stopping (as in Katib and Google Vizier): once a trial has run `min_epochs`
    epochs, it stops at the first epoch where its best objective so far is worse than the
    median of the COMPLETED trials' best at the same epoch (at least 2 of them reached it).
    A pruned trial stays COMPLETED with the score it reached, so the oracle learns from it."""

    rule: Literal["median"] = "median"
    min_epochs: int = Field(default=3, ge=1, le=10_000)
