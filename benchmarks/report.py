"""One table row per figure, printed as Markdown (pasted into the README as is)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Row:
    item: str
    measure: str
    value: str
    target: str = ""
    met: bool | None = None  # None: no target, a figure reported for what it is
    note: str = ""

    @property
    def verdict(self) -> str:
        return {True: "met", False: "**missed**", None: "-"}[self.met]


def table(rows: list[Row]) -> str:
    header = ["item", "measure", "measured", "target", "verdict", "notes"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [r.item, r.measure, r.value, r.target, r.verdict, r.note]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)
