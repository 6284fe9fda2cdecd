"""Print what `pip install ARGS` would require, one per line, without the projects' code.

    python scripts/requirements.py ".[worker]" ./client

The Dockerfile installs these (pinned by requirements.lock) in a layer of their own before it
copies the code, so that a code change does not reinstall TensorFlow; then it installs the
projects themselves with the same arguments, which adds nothing the layer missed unseen.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;@(]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def requirements(targets: list[str]) -> list[str]:
    """`targets` as pip takes them: a project directory with optional extras, `.[worker]`."""
    wanted: list[str] = []
    local: set[str] = set()
    for target in targets:
        path, _, extras = target.partition("[")
        project = tomllib.loads((Path(path) / "pyproject.toml").read_text())["project"]
        local.add(_name(project["name"]))
        wanted += project.get("dependencies", [])
        for extra in filter(None, extras.rstrip("]").split(",")):
            wanted += project["optional-dependencies"][extra.strip()]
    # The projects named here come from their directories, not from an index.
    return [line for line in wanted if _name(line) not in local]


if __name__ == "__main__":
    sys.stdout.write("".join(f"{line}\n" for line in requirements(sys.argv[1:])))
