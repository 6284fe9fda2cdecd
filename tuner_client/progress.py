"""The progress bar `Client.wait` draws: trials done / planned, best score so far, status;
under a time budget, the time (elapsed of the budget, and what is left) and the trials as a
count, since the planned trials are only a cap there."""

from __future__ import annotations

from typing import Any, TextIO

from tqdm import tqdm

from tuner_client.budget import is_budgeted, time_text
from tuner_client.ids import trial_label

# No rate column: trials/s is meaningless while the first trial runs, and the remaining
# time says the same thing better.
BAR_FORMAT = (
    "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} trials [{elapsed}<{remaining}{postfix}]"
)
# Under a budget the bar is the job's time, which the server counts (from its first start,
# across resumes): its words follow the bar, taken as they are.
TIME_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| "


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


def _postfix(job: dict[str, Any]) -> str:
    parts = [describe_best(job), job["status"], describe_current(job)]
    return ", ".join(p for p in parts if p)


def _view(job: dict[str, Any]) -> tuple[str, float, float]:
    """The bar's format, total and position for the job now: over its time under a budget
    (the words, taken as they are, after the bar), over its trials otherwise."""
    progress = job["progress"]
    if not is_budgeted(job):
        # Hyperband's plan is exact, the others' an upper bound that a grid may not reach:
        # follow the server's number rather than guess.
        return BAR_FORMAT, progress["trials_planned"], progress["trials_completed"]
    budget = progress["budget_s"]
    done = progress["trials_completed"]
    text = f"{time_text(job)}; {done} trial{'' if done == 1 else 's'} completed; {_postfix(job)}"
    literal = text.replace("{", "{{").replace("}", "}}")
    return TIME_FORMAT + literal, budget, min(budget, progress.get("elapsed_s") or 0)


class JobProgress:
    """A tqdm bar over trials, or over the time budget; updated from each polled job, closed
    when the job ends. A budget set or removed while it runs switches the bar's kind."""

    def __init__(self, job: dict[str, Any], file: TextIO | None) -> None:
        bar_format, total, _ = _view(job)
        self._bar = tqdm(
            total=total,
            desc=f"job {job['id'][:8]}",
            file=file,
            bar_format=bar_format,
            mininterval=0,  # polls are already a second apart
            dynamic_ncols=True,
        )
        # On a terminal every poll redraws (the clock moves); into a log or a pipe only a
        # change does, so that an hour's search is not thousands of identical lines.
        self._every_poll = bool(getattr(self._bar.fp, "isatty", lambda: False)())
        self._last: tuple[Any, ...] | None = None

    def update(self, job: dict[str, Any]) -> None:
        progress = job["progress"]
        postfix = _postfix(job)
        # The clock is left out: into a log, a line per trial, status or budget, not per poll.
        budget = progress.get("budget_s")
        state = (progress["trials_completed"], progress["trials_planned"], postfix, budget)
        if state == self._last and not self._every_poll:
            return
        self._last = state
        self._bar.bar_format, self._bar.total, self._bar.n = _view(job)
        if not is_budgeted(job):
            self._bar.set_postfix_str(postfix, refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        self._bar.close()
