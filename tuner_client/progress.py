"""The progress bar `Client.wait` draws: trials done / planned, best score so far, status."""

from __future__ import annotations

from typing import Any, TextIO

from tqdm import tqdm

from tuner_client.ids import trial_label

# No rate column: trials/s is meaningless while the first trial runs, and the remaining
# time says the same thing better.
BAR_FORMAT = (
    "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} trials [{elapsed}<{remaining}{postfix}]"
)


def describe_best(job: dict[str, Any]) -> str:
    best = job.get("best")
    if not best:
        return "best -"
    objective = (job.get("spec") or {}).get("objective") or {}
    if isinstance(objective, list):  # a multi-objective job: the score is the first one's
        objective = objective[0] if objective else {}
    name = objective.get("name") or "score"
    return f"best {name}={best['score']:.4g} (trial {trial_label(best['trial_id'])})"


def describe_current(job: dict[str, Any]) -> str:
    current = job["progress"].get("current_trial")
    if not current:
        return ""
    epochs = current["epochs_run"]
    plural = "" if epochs == 1 else "s"
    return f"trial {trial_label(current['trial_id'])}: {epochs} epoch{plural} done"


class JobProgress:
    """A tqdm bar over trials; updated from each polled job, closed when the job ends."""

    def __init__(self, job: dict[str, Any], file: TextIO | None) -> None:
        self._bar = tqdm(
            total=job["progress"]["trials_planned"],
            desc=f"job {job['id'][:8]}",
            file=file,
            bar_format=BAR_FORMAT,
            mininterval=0,  # polls are already a second apart
            dynamic_ncols=True,
        )
        # On a terminal every poll redraws (the clock moves); into a log or a pipe only a
        # change does, so that an hour's search is not thousands of identical lines.
        self._every_poll = bool(getattr(self._bar.fp, "isatty", lambda: False)())
        self._last: tuple[Any, ...] | None = None

    def update(self, job: dict[str, Any]) -> None:
        progress = job["progress"]
        parts = [describe_best(job), job["status"], describe_current(job)]
        postfix = ", ".join(p for p in parts if p)
        state = (progress["trials_completed"], progress["trials_planned"], postfix)
        if state == self._last and not self._every_poll:
            return
        self._last = state
        # Hyperband's plan is exact, the others' an upper bound that a grid may not reach:
        # follow the server's number rather than guess.
        self._bar.total = progress["trials_planned"]
        self._bar.n = progress["trials_completed"]
        self._bar.set_postfix_str(postfix, refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        self._bar.close()
