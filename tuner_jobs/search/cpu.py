"""How a search process uses the machine: below the API in priority, a bounded thread pool,
and a garbage collector that does not rescan TensorFlow's modules on every trial.

`prepare_search_process` runs first thing in a search child, before TensorFlow runs any
op (its thread pools are fixed at the first op; setting them later raises).
"""

from __future__ import annotations

import gc
import logging
import os

from app.settings import Settings

logger = logging.getLogger(__name__)


def lower_priority(nice: int) -> int:
    """Raise this process's niceness to `nice` (never lower it: that needs privileges).

    The API's threads then win the CPU whenever they want it, so a poll answers
    quickly even while every core trains. Returns the niceness now in effect.
    """
    current = os.nice(0)
    return os.nice(nice - current) if nice > current else current


def limit_threads(threads: int) -> None:
    """At most `threads` TensorFlow threads per pool, and as many OpenMP and BLAS threads
    (0: the libraries' defaults, one per core).

    With one thread per process, two searches on two cores each keep one core busy
    instead of both spinning up pools as wide as the machine and fighting over it.
    """
    if threads <= 0:
        return
    # OpenMP and BLAS too: scikit-learn's gradient boosting (the baselines) spins up a pool
    # as wide as the machine, and beside other searches its threads wait on each other far
    # longer than they compute (docs/benchmarks.md). Set before those libraries load, and
    # on any already loaded.
    os.environ["OMP_NUM_THREADS"] = str(threads)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError as exc:  # something already ran an op: the pools are fixed
        logger.warning("cannot limit TensorFlow's threads: %s", exc)


def freeze_imports() -> None:
    """Import the training stack now and exempt what it allocated from garbage collection.

    KerasTuner runs a full `gc.collect()` twice per trial (clear_session and _try_build).
    After TensorFlow's import the heap holds some 350,000 objects that live as long as
    the process, and each collection walks them all, twice a trial (docs/benchmarks.md
    has the measured cost). gc.freeze() moves them to a permanent generation that
    collections skip; objects made later (models, graphs, data) are collected as before.
    """
    import keras  # noqa: F401
    import keras_tuner  # noqa: F401

    gc.collect()
    gc.freeze()


_prepared = False


def prepare_search_process(settings: Settings) -> None:
    """Once per process: a process that runs its worker's next job (child.run_spare) has
    its threads fixed by its first (TensorFlow's pools cannot change once an op ran), and
    freezing again would exempt what a finished job left from every later collection."""
    global _prepared
    if _prepared:
        return
    lower_priority(settings.worker_nice)
    limit_threads(settings.child_threads)
    freeze_imports()
    _prepared = True
