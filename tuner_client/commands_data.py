"""The dataset commands (datasets, delete-dataset) and predict: rows from a CSV, predictions
to a CSV. The csv module, not pandas: pandas is an optional extra of the client."""

from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path
from typing import Any

from tuner_client.cli import UsageError, err, out
from tuner_client.client import Client
from tuner_client.display import table
from tuner_client.errors import InvalidRequest

# POST /predict takes at most 10,000 rows a request (app.search.prediction.MAX_ROWS).
BATCH_ROWS = 10_000


def cmd_datasets(client: Client, args: argparse.Namespace) -> int:
    datasets = client.datasets()
    if not datasets:
        err("no datasets")
        return 0
    rows = [
        {
            "id": d["id"],
            "name": d["name"],
            "rows": d["rows"],
            "task": d["task"],
            "created": d["created_at"],
        }
        for d in datasets
    ]
    out(table(rows))
    return 0


def cmd_delete_dataset(client: Client, args: argparse.Namespace) -> int:
    dataset_id = client.resolve_dataset(args.dataset)
    client.delete_dataset(dataset_id)
    out(f"dataset {dataset_id}: deleted")
    return 0


def _number(text: str) -> int | float | str:
    # Left as text when it is no number: the server's 422 then names the row and column.
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def typed_rows(
    records: list[dict[str, str]], columns: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """CSV cells (all text) as the API takes them: numbers for the dataset's numeric columns,
    null for an empty cell (a missing value, imputed by the model)."""
    numeric = {c["name"] for c in columns if c["kind"] == "numeric"}
    return [
        {
            name: None if cell in ("", None) else _number(cell) if name in numeric else cell
            for name, cell in record.items()
        }
        for record in records
    ]


def _read_rows(path: Path) -> list[dict[str, str]]:
    try:
        # utf-8-sig: a spreadsheet's export often starts with a byte-order mark.
        with path.open(newline="", encoding="utf-8-sig") as file:
            records = list(csv.DictReader(file))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UsageError(f"{path}: {exc}") from exc
    if not records:
        raise UsageError(f"{path}: no rows (a header line, then one row per line)")
    return records


def predictions_csv(predictions: list[dict[str, Any]]) -> str:
    """One line per input row: `label` and `probability_<class>` each, or `value`."""
    if predictions and predictions[0].get("probabilities") is not None:
        classes = list(predictions[0]["probabilities"])
        header = ["label", *(f"probability_{c}" for c in classes)]
        lines = [[p["label"], *(p["probabilities"][c] for c in classes)] for p in predictions]
    else:
        header, lines = ["value"], [[p["value"]] for p in predictions]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(lines)
    return buffer.getvalue()


def cmd_predict(client: Client, args: argparse.Namespace) -> int:
    records = _read_rows(args.rows)  # before any request: a wrong path costs no round trip
    job = client.job(client.resolve_job(args.job))
    columns = client.dataset(job["dataset_id"])["columns"]
    rows = typed_rows(records, columns)
    predictions: list[dict[str, Any]] = []
    for start in range(0, len(rows), BATCH_ROWS):
        try:
            predictions += client.predict(job, rows[start : start + BATCH_ROWS])
        except InvalidRequest:
            if start:
                err(f"note: the rows the server numbers below start at data row {start}")
            raise
    text = predictions_csv(predictions)
    # Written whole, once every batch has come back: a failure leaves no partial file.
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text)
        err(f"{len(predictions)} predictions written to {args.output}")
    return 0
