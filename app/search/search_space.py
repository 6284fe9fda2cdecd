"""The search-space language: validation, defaults and power-of-two seeding.

Pure Python (the API imports it). The result, the *effective* search space, is
plain JSON stored on the job; `tuner_jobs.search.hyperparameters` turns it into
KerasTuner `HyperParameters` in the worker.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from app.errors import ProblemError

Sampling = Literal["linear", "log"]
MAX_STEPS = 100_000  # values one stepped range may list
Scalar = int | float | str | bool
# Whole numbers a float holds exactly: past that, range arithmetic overflows.
Int53 = Annotated[int, Field(ge=-(2**53), le=2**53)]


class _Param(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IntParam(_Param):
    type: Literal["int"]
    min: Int53
    max: Int53
    step: Int53 | None = Field(default=None, gt=0)
    sampling: Sampling = "linear"
    default: Int53 | None = None

    @model_validator(mode="after")
    def _check(self) -> IntParam:
        _check_range(self.min, self.max, self.sampling, self.default, self.step)
        return self


class FloatParam(_Param):
    type: Literal["float"]
    min: float
    max: float
    step: float | None = Field(default=None, gt=0)
    sampling: Sampling = "linear"
    default: float | None = None

    @model_validator(mode="after")
    def _check(self) -> FloatParam:
        if not (math.isfinite(self.min) and math.isfinite(self.max)):
            raise ValueError("min and max must be finite numbers")
        _check_range(self.min, self.max, self.sampling, self.default, self.step)
        return self


class Pow2Param(_Param):
    """Powers of two from min to max; bounds omitted are seeded from the dataset."""

    type: Literal["pow2"]
    min: Int53 | None = None
    max: Int53 | None = None
    default: Int53 | None = None

    @model_validator(mode="after")
    def _check(self) -> Pow2Param:
        for bound in ("min", "max"):
            value = getattr(self, bound)
            if value is not None and not is_power_of_two(value):
                raise ValueError(f"{bound}={value} is not a power of two (1, 2, 4, 8, ...)")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        if self.default is not None and not is_power_of_two(self.default):
            raise ValueError(f"default={self.default} is not a power of two")
        # KerasTuner takes an out-of-range default as is, so the first trial would leave the range.
        bounded = self.min is not None and self.max is not None
        if self.default is not None and bounded and not self.min <= self.default <= self.max:
            raise ValueError(f"default {self.default} is outside [{self.min}, {self.max}]")
        return self


class ChoiceParam(_Param):
    type: Literal["choice"]
    values: list[Scalar] = Field(min_length=1)
    default: Scalar | None = None

    @model_validator(mode="after")
    def _check(self) -> ChoiceParam:
        kinds = {_kind(v) for v in self.values}
        if len(kinds) > 1:
            raise ValueError("all values of a choice must have the same type")
        # By value within a kind: 0 and 0.0 are one value (a float knob casts both to 0.0).
        if len({(_kind(v), v) for v in self.values}) != len(self.values):
            raise ValueError("choice values must be unique")
        if self.default is not None and self.default not in self.values:
            raise ValueError(f"default {self.default!r} is not one of the values")
        return self


class BooleanParam(_Param):
    type: Literal["boolean"]
    default: bool = False


class FixedParam(_Param):
    type: Literal["fixed"]
    value: Scalar


Param = Annotated[
    IntParam | FloatParam | Pow2Param | ChoiceParam | BooleanParam | FixedParam,
    Field(discriminator="type"),
]
_param_adapter: TypeAdapter[Any] = TypeAdapter(Param)


def _check_range(
    lo: float, hi: float, sampling: str, default: float | None, step: float | None
) -> None:
    if lo > hi:
        raise ValueError(f"min ({lo}) is greater than max ({hi})")
    if sampling == "log" and lo <= 0:
        raise ValueError("log sampling needs min > 0")
    if sampling == "log" and step is not None and step <= 1:
        raise ValueError("with log sampling, step is a multiplier and must be > 1")
    if default is not None and not lo <= default <= hi:
        raise ValueError(f"default {default} is outside [{lo}, {hi}]")
    if step is not None:
        # A grid lists every step: a tiny one would hang the API and the worker.
        steps = math.log(hi / lo, step) if sampling == "log" else (hi - lo) / step
        if steps >= MAX_STEPS:
            raise ValueError(f"step {step} gives more than {MAX_STEPS} values; use a larger step")


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "str"


def is_power_of_two(value: int) -> bool:
    return value >= 1 and value & (value - 1) == 0


# --- The hyperparameters the model builder understands --------------------------------

ACTIVATIONS = ("relu", "tanh", "sigmoid", "elu", "selu", "gelu", "swish", "softplus", "linear")
INITIALIZERS = (
    "glorot_uniform",
    "glorot_normal",
    "he_uniform",
    "he_normal",
    "lecun_uniform",
    "lecun_normal",
    "random_uniform",
    "random_normal",
    "zeros",
    "ones",
)
OPTIMIZERS = ("adam", "adamw", "rmsprop", "sgd", "nadam", "adagrad")
MAX_LAYERS = 16


class _Rule(BaseModel):
    """What values a known hyperparameter accepts."""

    kind: Literal["int", "float", "str", "bool"]
    types: tuple[str, ...]
    lo: float | None = None
    hi: float | None = None
    hi_exclusive: bool = False
    allowed: tuple[str, ...] | None = None


RULES: dict[str, _Rule] = {
    "num_layers": _Rule(kind="int", types=("int", "choice", "fixed"), lo=0, hi=MAX_LAYERS),
    "units": _Rule(kind="int", types=("pow2", "int", "choice", "fixed"), lo=1, hi=65536),
    "activation": _Rule(kind="str", types=("choice", "fixed"), allowed=ACTIVATIONS),
    "dropout": _Rule(
        kind="float", types=("float", "choice", "fixed"), lo=0, hi=1, hi_exclusive=True
    ),
    "kernel_initializer": _Rule(kind="str", types=("choice", "fixed"), allowed=INITIALIZERS),
    "optimizer": _Rule(kind="str", types=("choice", "fixed"), allowed=OPTIMIZERS),
    "learning_rate": _Rule(kind="float", types=("float", "choice", "fixed"), lo=1e-7, hi=10),
    "batch_size": _Rule(kind="int", types=("pow2", "int", "choice", "fixed"), lo=1, hi=1 << 16),
    "l2": _Rule(kind="float", types=("float", "choice", "fixed"), lo=0, hi=1),
    "batch_norm": _Rule(kind="bool", types=("boolean", "choice", "fixed")),
}
KNOWN_HYPERPARAMETERS = tuple(RULES)
# pow2 bounds that do not come from the dataset's width (units are seeded from it).
SEEDED_POW2: dict[str, tuple[int, int]] = {"batch_size": (16, 256)}


def declaration_order(space: dict[str, Any]) -> list[str]:
    """The hyperparameters other than num_layers and units, in one fixed order.

    Not the stored dict's order: PostgreSQL's JSONB reorders keys, and KerasTuner's
    seeded sampling depends on the order of declaration.
    """
    return [
        name
        for name in KNOWN_HYPERPARAMETERS
        if name in space and name not in ("num_layers", "units")
    ]


def recommended_units(features: int) -> int:
    """Smallest power of two at or above twice the number of inputs (40 -> 128)."""
    return 1 << max(0, math.ceil(math.log2(max(1, 2 * features))))


def units_range(features: int) -> tuple[int, int]:
    """The seeded `units` range, [2^(n-2), 2^(n+1)] around the recommended 2^n."""
    rec = recommended_units(features)
    return max(1, rec // 4), rec * 2


def default_search_space(
    features: int, batches: list[int] | None = None
) -> dict[str, dict[str, Any]]:
    """The seeded space. `batches`: the batch sizes for the table's rows
    (app.search.training_length.default_batches), when its size is known.

    num_layers starts at 0: a network with no hidden layer is a linear model (a logistic
    regression for classification), which wins on many small tables; a search that can
    reach it has no reason to lose to the linear baseline by more than noise."""
    low, high = units_range(features)
    batch_values = batches or [32, 64, 128]
    return {
        # The search starts from one hidden layer of the recommended width.
        "num_layers": {
            "type": "int",
            "min": 0,
            "max": 3,
            "step": 1,
            "sampling": "linear",
            "default": 1,
        },
        "units": {"type": "pow2", "min": low, "max": high, "default": recommended_units(features)},
        "activation": {"type": "choice", "values": ["relu", "tanh"], "default": "relu"},
        "dropout": {
            "type": "float",
            "min": 0.0,
            "max": 0.5,
            "step": 0.1,
            "sampling": "linear",
            "default": 0.0,
        },
        "kernel_initializer": {
            "type": "choice",
            "values": ["glorot_uniform", "he_normal"],
            "default": "glorot_uniform",
        },
        "optimizer": {"type": "choice", "values": ["adam", "rmsprop"], "default": "adam"},
        "learning_rate": {
            "type": "float",
            "min": 1e-4,
            "max": 1e-2,
            "sampling": "log",
            "default": 1e-3,
        },
        "batch_size": {"type": "choice", "values": batch_values, "default": batch_values[0]},
        "l2": {"type": "fixed", "value": 0.0},
        "batch_norm": {"type": "fixed", "value": False},
    }


def _param_values(param: Any) -> list[Any]:
    """Every value a parameter can take, for range checks (continuous ranges give bounds)."""
    if isinstance(param, FixedParam):
        return [param.value]
    if isinstance(param, ChoiceParam):
        return list(param.values)
    if isinstance(param, BooleanParam):
        return [False, True]
    if isinstance(param, IntParam | FloatParam):
        return [param.min, param.max]
    if isinstance(param, Pow2Param):
        return [v for v in (param.min, param.max) if v is not None]
    return []


def _check_rule(name: str, param: Any) -> str | None:
    rule = RULES[name]
    if param.type not in rule.types:
        return f"type {param.type!r} is not allowed for {name}; use one of {list(rule.types)}"
    for value in _param_values(param):
        if rule.kind == "bool":
            if not isinstance(value, bool):
                return f"{name} takes true/false, got {value!r}"
        elif rule.kind == "str":
            if not isinstance(value, str):
                return f"{name} takes names, got {value!r}"
            if rule.allowed and value not in rule.allowed:
                return f"unknown {name} {value!r}; known: {list(rule.allowed)}"
        else:
            if isinstance(value, bool) or not isinstance(value, int | float):
                return f"{name} takes numbers, got {value!r}"
            # NaN passes every range check and is not JSON; a huge int overflows float().
            if isinstance(value, int) and abs(value) > 2**53 or not math.isfinite(value):
                return f"{name} takes finite numbers, got {value!r}"
            if rule.kind == "int" and not float(value).is_integer():
                return f"{name} takes whole numbers, got {value!r}"
            if rule.lo is not None and value < rule.lo:
                return f"{name} must be >= {rule.lo}, got {value!r}"
            if rule.hi is not None and (value >= rule.hi if rule.hi_exclusive else value > rule.hi):
                bound = "<" if rule.hi_exclusive else "<="
                return f"{name} must be {bound} {rule.hi}, got {value!r}"
    return None


def _seed_pow2(name: str, param: Pow2Param, features: int) -> Pow2Param:
    """Fill omitted bounds (validated again: a default must fall inside the seeded range)."""
    seeded_low, seeded_high = SEEDED_POW2.get(name, units_range(features))
    lo = param.min if param.min is not None else min(seeded_low, param.max or seeded_low)
    hi = param.max if param.max is not None else max(seeded_high, lo)
    default = param.default
    if default is None and name == "units" and lo <= recommended_units(features) <= hi:
        # Start the search from the recommended width, as the built-in default does.
        default = recommended_units(features)
    return Pow2Param(type="pow2", min=lo, max=hi, default=default)


def _as_json(name: str, param: Any) -> dict[str, Any]:
    """The entry with its numbers cast to the hyperparameter's kind.

    JSON writes 0.0 as 0, and KerasTuner's Choice refuses a mix of ints and floats
    (dropout [0, 0.2, 0.5] would fail in the worker).
    """
    entry = param.model_dump(exclude_none=True)
    cast = {"int": int, "float": float}.get(RULES[name].kind)
    if cast is not None and isinstance(param, ChoiceParam | FixedParam):
        for key in ("value", "default"):
            if key in entry:
                entry[key] = cast(entry[key])
        if "values" in entry:
            entry["values"] = [cast(v) for v in entry["values"]]
    return entry


def effective_search_space(
    user_space: dict[str, Any] | None, *, features: int, batches: list[int] | None = None
) -> dict[str, dict[str, Any]]:
    """Merge the user's search space over the seeded defaults and validate every entry.

    Raises a 422 ProblemError listing every problem, each naming its field.
    """
    space = default_search_space(features, batches)
    errors: list[dict[str, Any]] = []
    for name, raw in (user_space or {}).items():
        loc: list[str | int] = ["body", "search_space", name]
        if name not in RULES:
            errors.append(
                {
                    "loc": loc,
                    "msg": f"unknown hyperparameter {name!r}; known: "
                    f"{', '.join(KNOWN_HYPERPARAMETERS)}",
                    "type": "unknown_hyperparameter",
                }
            )
            continue
        try:
            param = _param_adapter.validate_python(raw)
            if isinstance(param, Pow2Param):
                param = _seed_pow2(name, param, features)
        except ValidationError as exc:
            for err in exc.errors():
                errors.append(
                    {
                        "loc": loc + [str(p) for p in err["loc"]],
                        "msg": err["msg"],
                        "type": err["type"],
                    }
                )
            continue
        problem = _check_rule(name, param)
        if problem:
            errors.append({"loc": loc, "msg": problem, "type": "invalid_hyperparameter"})
            continue
        space[name] = _as_json(name, param)
    if errors:
        detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in errors)
        raise ProblemError(422, detail, title="Invalid search space", errors=errors)
    return space
