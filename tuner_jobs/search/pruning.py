"""Median stopping (the rule of Katib and Google Vizier), for every algorithm.

A trial that has run `min_epochs` epochs stops at the first epoch where its best
objective so far is worse than the median of the COMPLETED trials' best at the same
epoch, once at least two completed trials reached that epoch. The completed curves are
read from SQL (trial_epochs, as the recorder wrote them) when each trial begins, so a
resumed search and the tuners of a parallel job judge against the same trials.

No Keras here: the tuner's epoch hook asks `should_stop` and stops the model itself.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Mapping

from app.search.spec import ResolvedObjective
from app.search.spec_sections import PruningSpec

# trial_id -> [(epoch, objective value or None)] of each COMPLETED trial.
Curves = Mapping[str, Iterable[tuple[int, float | None]]]

MIN_PEERS = 2


class MedianPruner:
    def __init__(
        self, rule: PruningSpec, objective: ResolvedObjective, completed: Callable[[], Curves]
    ) -> None:
        self.min_epochs = rule.min_epochs
        self.objective = objective.name
        self.maximize = objective.direction == "max"
        self._load = completed
        self._peers: dict[int, list[float]] = {}  # epoch -> completed trials' best so far
        self._best: dict[str, float] = {}  # running trial -> its best so far

    def _better(self, a: float, b: float) -> bool:
        return a > b if self.maximize else a < b

    def _running_best(self, curve: Iterable[tuple[int, float | None]]) -> dict[int, float]:
        best: float | None = None
        out: dict[int, float] = {}
        for epoch, value in sorted(curve, key=lambda point: point[0]):
            if value is not None and (best is None or self._better(value, best)):
                best = value
            if best is not None:
                out[epoch] = best
        return out

    def trial_began(self, trial_id: str) -> None:
        """Read the completed trials' curves afresh (this trial's peers)."""
        peers: dict[int, list[float]] = {}
        for curve in self._load().values():
            for epoch, best in self._running_best(curve).items():
                peers.setdefault(epoch, []).append(best)
        self._peers = peers
        self._best.pop(trial_id, None)

    def should_stop(self, trial_id: str, epoch: int, value: float | None) -> bool:
        """After epoch `epoch` (0-based) of a running trial whose objective was `value`."""
        if value is not None:
            best = self._best.get(trial_id)
            if best is None or self._better(value, best):
                self._best[trial_id] = value
        if epoch + 1 < self.min_epochs:
            return False
        peers = self._peers.get(epoch, [])
        if len(peers) < MIN_PEERS:
            return False
        mine = self._best.get(trial_id)
        median = statistics.median(peers)
        # A trial with no finite objective yet is worse than any median.
        return mine is None or self._better(median, mine)

    def trial_ended(self, trial_id: str) -> None:
        self._best.pop(trial_id, None)
