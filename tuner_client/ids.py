"""Short ids: the unique prefix of a job or dataset id that the dashboard and progress bar
show, matched client-side against the list endpoint; and trial ids as numbers."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from tuner_client.errors import AmbiguousId, NotFound

# The service's ids are uuid4().hex: a string of this shape is taken as given, so a full
# id never costs a listing (an unknown one gets the server's own 404).
FULL_ID = re.compile(r"[0-9a-f]{32}")
# An ambiguous prefix lists its candidates; past this many it only counts the rest.
MAX_LISTED = 10


def is_full_id(ref: str) -> bool:
    return FULL_ID.fullmatch(ref) is not None


def trial_label(trial_id: str) -> str:
    """A trial id as the dashboard shows it. KerasTuner pads its ids to the width of
    max_trials ("0003" under Hyperband), the Optuna oracles do not ("3"): a numeric id is
    shown as its number under every algorithm (Client.resolve_trial takes it back)."""
    text = str(trial_id)
    return text.lstrip("0") or "0" if text.isdigit() else text


def short_ids(ids: list[str], minimum: int = 8) -> dict[str, str]:
    """Each id's shortest start (at least `minimum` characters) that no other id shares."""
    shown = {}
    for full in ids:
        n = minimum
        while n < len(full) and any(o != full and o.startswith(full[:n]) for o in ids):
            n += 1
        shown[full] = full[:n]
    return shown


def match_prefix(
    kind: str,
    ref: str,
    items: Iterable[dict[str, Any]],
    describe: Callable[[dict[str, Any]], str],
) -> str:
    """The one id in `items` that starts with `ref`; NotFound for none, AmbiguousId (its
    `errors` name each candidate) for several."""
    prefix = ref.strip().lower()
    matches = [item for item in items if prefix and str(item["id"]).startswith(prefix)]
    if not matches:
        raise NotFound(
            f"{kind.capitalize()} not found",
            f"{kind} {ref!r} does not exist (no {kind} id starts with it)",
        )
    if len(matches) == 1:
        return str(matches[0]["id"])
    listed = [{"loc": [item["id"]], "msg": describe(item)} for item in matches[:MAX_LISTED]]
    more = len(matches) - MAX_LISTED
    if more > 0:
        listed.append({"loc": ["..."], "msg": f"and {more} more"})
    raise AmbiguousId(
        f"Ambiguous {kind} id",
        f"{ref!r} is the start of {len(matches)} {kind} ids; give more of it",
        errors=listed,
    )
