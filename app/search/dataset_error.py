"""The error every dataset check raises: a 422 naming the field (the file, the target)."""

from __future__ import annotations

from app.errors import ProblemError


class DatasetError(ProblemError):
    def __init__(self, detail: str, *, field: str = "file") -> None:
        super().__init__(
            422,
            detail,
            title="Invalid dataset",
            errors=[{"loc": ["body", field], "msg": detail, "type": "dataset"}],
        )
        self.field = field
