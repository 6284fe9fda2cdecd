"""Pareto fronts of a multi-objective search, in pure Python (the API and the search share it).

A trial dominates another when it is at least as good on every objective and better on
one. The front is the completed trials no other dominates. The search process keeps the
model of every trial on it (tuner_jobs.search.front_models); the API lists them
(GET /jobs/{id}/pareto) and names the one with the best first objective as the job's best.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TypeVar

K = TypeVar("K")
Vector = Sequence[float | None]


def _comparable(values: Vector, directions: Sequence[str]) -> list[float] | None:
    """The values as numbers to minimize; None when one is missing or not finite (such a
    trial is on no front: it cannot be compared on that objective)."""
    out: list[float] = []
    for value, direction in zip(values, directions, strict=True):
        if value is None or not math.isfinite(value):
            return None
        out.append(-value if direction == "max" else value)
    return out


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether `a` dominates `b` (both to be minimized)."""
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(
        x < y for x, y in zip(a, b, strict=True)
    )


def non_dominated(points: Mapping[K, Vector], directions: Sequence[str]) -> list[K]:
    """The keys of `points` on the Pareto front, in the mapping's order. Equal vectors do
    not dominate one another: both stay. O(n^2), for the few hundred trials a job has."""
    comparable = {
        key: vector
        for key, values in points.items()
        if (vector := _comparable(values, directions)) is not None
    }
    return [
        key
        for key, vector in comparable.items()
        if not any(dominates(other, vector) for other in comparable.values())
    ]


def rank_key(values: Vector, directions: Sequence[str]) -> tuple[float, ...]:
    """Sort key, best first: the first objective, then the next ones in order (a missing
    value last). The lowest key of a set is on its front: nothing can beat it on the first
    objective, and among those tied there, nothing beats it on the next."""
    key: list[float] = []
    for value, direction in zip(values, directions, strict=True):
        if value is None or not math.isfinite(value):
            key.append(math.inf)
        else:
            key.append(-value if direction == "max" else value)
    return tuple(key)


def best_of(points: Mapping[K, Vector], directions: Sequence[str]) -> K | None:
    """The point with the best first objective, ties broken by the next objectives, then by
    the mapping's order; None when no point has all its values."""
    front = non_dominated(points, directions)
    if not front:
        return None
    return min(front, key=lambda key: rank_key(points[key], directions))
