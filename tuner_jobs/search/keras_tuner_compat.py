"""Every use of KerasTuner's private parts (`keras_tuner.src`, `_underscored` members).

KerasTuner promises nothing about these between releases. They were read for
keras-tuner 1.4.7 to 1.4.x (1.4.7 and 1.4.8 have the same `src` bar an image-augment
default; installed when written: 1.4.8), so importing this module on another version
fails at once, naming both versions, instead of mid-search on a missing attribute.
An import-linter contract in pyproject.toml keeps every other module off `keras_tuner.src`.

What the service needs KerasTuner's internals for:
- `SaveBestEpoch` and its writer: the best epoch is kept in memory and written once
  (tuner_jobs.search.checkpoint);
- the per-oracle lock `@synchronized` takes (`LOCKS`, `THREADS`), KerasTuner's gRPC
  servicer and protos: the chief serves the oracle itself (tuner_jobs.search.chief);
- `oracle_client.TIMEOUT`: a tuner worker gives up on a dead chief sooner than an hour;
- a tuner's checkpoint path and Hyperband's open brackets: checkpoint pruning;
- the oracle's "too many failed trials in a row" check, run while the chief waits;
- Hyperband's smallest rung (`min_epochs`, which its oracle takes no argument for);
- the retry queue a reloaded oracle fills from its ongoing trials, some of which had ended.

Three private methods are overridden, not called, elsewhere (a subclass cannot go through
this module): `Oracle._random_values` and `Oracle._compute_values_hash`, by the warm start's
oracle mixin (tuner_jobs.search.warm_start), which hands out its queued configurations
through the one method every built-in oracle draws new values with; and `Tuner._try_build`,
by the recording tuner (tuner_jobs.search.tuners), which hands a trial a cached model
(tuner_jobs.search.model_reuse) instead of building the same network again.
"""

from __future__ import annotations

import re
from typing import Any

import keras_tuner

SUPPORTED = ">=1.4.7,<1.5"
_LOWEST = (1, 4, 7)
_BELOW = (1, 5)


class UnsupportedKerasTuner(ImportError):
    """The installed keras-tuner is outside the range this module was read for."""


def check_version(installed: str) -> None:
    """Raise UnsupportedKerasTuner unless `installed` (e.g. "1.4.8") is in SUPPORTED."""
    match = re.match(r"(\d+)\.(\d+)\.(\d+)", installed)
    release = tuple(int(part) for part in match.groups()) if match else None
    if release is None or not _LOWEST <= release < _BELOW:
        raise UnsupportedKerasTuner(
            f"keras-tuner {installed} is installed, but tuner-service uses KerasTuner "
            f"internals (keras_tuner.src) read for keras-tuner{SUPPORTED} only: install "
            f"a supported version (pip install 'keras-tuner{SUPPORTED}'), or re-read "
            "tuner_jobs/search/keras_tuner_compat.py against the new one"
        )


# Before the private imports: on another version they may fail with a less helpful error.
check_version(keras_tuner.__version__)

from keras_tuner.src import protos  # noqa: E402
from keras_tuner.src.distribute import oracle_client  # noqa: E402
from keras_tuner.src.distribute.oracle_chief import OracleServicer  # noqa: E402
from keras_tuner.src.engine.oracle import LOCKS, THREADS  # noqa: E402
from keras_tuner.src.engine.tuner_utils import SaveBestEpoch  # noqa: E402

__all__ = [
    "LOCKS",
    "SUPPORTED",
    "THREADS",
    "OracleServicer",
    "SaveBestEpoch",
    "UnsupportedKerasTuner",
    "check_consecutive_failures",
    "check_version",
    "checkpoint_path",
    "drop_ended_retries",
    "hyperband_brackets",
    "is_oracle_client",
    "oracle_client",
    "protos",
    "write_checkpoint",
]


def write_checkpoint(callback: SaveBestEpoch) -> None:
    """Write the model's current state where `callback` writes its best epoch."""
    callback._save_model()  # noqa: SLF001


def check_consecutive_failures(oracle: Any) -> None:
    """Raise KerasTuner's own error when too many trials in a row have failed."""
    oracle._check_consecutive_failures()  # noqa: SLF001


def checkpoint_path(tuner: Any, trial_id: str) -> str:
    """Where `tuner` keeps trial `trial_id`'s weights checkpoint."""
    return tuner._get_checkpoint_fname(trial_id)  # noqa: SLF001


def hyperband_brackets(oracle: Any) -> list[dict[str, Any]]:
    """A HyperbandOracle's open brackets (what it may still promote); [] for any other oracle."""
    return getattr(oracle, "_brackets", None) or []


def is_oracle_client(oracle: Any) -> bool:
    """Whether `oracle` is a tuner slot's stand-in for the chief's (KerasTuner swaps it in
    when the process is a distributed worker): it forwards calls over gRPC and holds
    none of the oracle's state (no `trials`, no brackets), which the chief's decides."""
    return isinstance(oracle, oracle_client.OracleClient)


def set_hyperband_min_epochs(oracle: Any, min_epochs: int) -> None:
    """Hyperband's smallest rung, in epochs: HyperbandOracle keeps it as `min_epochs` (1,
    with no argument to set it) and picks its first bracket from it when made, so a fresh
    oracle's `_current_bracket` is picked again. Call before the oracle's first trial."""
    oracle.min_epochs = min_epochs
    oracle._current_bracket = oracle._get_num_brackets() - 1


def drop_ended_retries(oracle: Any) -> list[str]:
    """Take off a just-reloaded oracle's retry queue the trials that had ended; returns them.

    `Oracle.end_trial` writes oracle.json (the trial in `end_order`) before it drops the
    trial from `ongoing_trials`, and `Oracle.reload` queues every ongoing trial for a retry:
    a chief lost between the two (a remote EndTrial) ran a completed trial again on reload.
    A trial in `end_order` was ended for good (a retried one is not appended there)."""
    ended = set(oracle.end_order)
    queue = oracle._retry_queue  # noqa: SLF001
    dropped = [trial_id for trial_id in queue if trial_id in ended]
    if dropped:
        oracle._retry_queue = [t for t in queue if t not in ended]  # noqa: SLF001
    return dropped
