"""Bad uploads and bad job specs: a 4xx problem+json that names the problem, never a 500,
and nothing already stored is lost.

Each test walks a table of cases against one live server: a server per case would cost
most of a second each on two backends, and sharing one also checks that earlier bad
requests leave nothing behind for the later ones.
"""

from __future__ import annotations

import io
from typing import Any

import httpx
import numpy as np

from app.search.search_space import KNOWN_HYPERPARAMETERS
from app.settings import Settings
from tests.conftest import LiveServer
from tests.factories import (
    assert_problem,
    csv_bytes,
    customers_frame,
    npz_bytes,
    parquet_bytes,
    submit,
    upload,
    upload_ok,
)

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00"


def _customers_csv(**replace: Any) -> bytes:
    """customers_frame(60) with single cells replaced: {column: (row, value)}."""
    frame = customers_frame(rows=60)
    for column, (row, value) in replace.items():
        frame[column] = frame[column].astype(object)
        frame.loc[row, column] = value
    return csv_bytes(frame)


def _object_npz() -> bytes:
    x = np.empty((2, 1), dtype=object)
    x[0, 0], x[1, 0] = {"a": 1}, [2]
    return npz_bytes(x=x, y=np.array([0, 1]))


def _refused(case: str, response: httpx.Response, status: int, *needles: str) -> dict[str, Any]:
    try:
        return assert_problem(response, status, *needles)
    except AssertionError as exc:
        raise AssertionError(f"case {case!r}: {exc}") from None


# (case, content, target, what the detail must name)
BAD_CSV = [
    ("ragged", "a,b,c\n1,2,x\n3,4,y,5,6\n", "c", ("malformed csv", "line 3")),
    ("unclosed quote", 'a,b\n1,"x\n2,y\n', "b", ("malformed csv",)),
    ("empty file", b"", "churned", ("the file is empty",)),
    ("blank lines", "\n\n", "churned", ("the csv file is empty",)),
    ("header only", "age,plan,churned\n", "churned", ("no data rows",)),
    (
        "unknown target",
        _customers_csv(),
        "churn",
        ("'churn' is not in the file", "'age (years)'", "'income/yr'", "'home city'", "'plan'"),
    ),
    (
        "infinite input",
        _customers_csv(**{"income/yr": (7, "inf")}),
        "churned",
        ("column 'income/yr'", "infinite", "row 8"),
    ),
    ("infinite target", "a,b\n1,-inf\n2,3.5\n3,1\n", "b", ("column 'b'", "infinite")),
    (
        "unparseable number",
        _customers_csv(**{"age (years)": (4, "abc")}),
        "churned",
        ("column 'age (years)'", "unparseable", "'abc'", "row 5"),
    ),
    ("latin-1 text", "café,churned\n1,yes\n".encode("latin-1"), "churned", ("not utf-8",)),
]

# (case, filename, content, what the detail must name)
BAD_FILES = [
    ("png named .csv", "picture.csv", PNG, ("named .csv", "binary")),
    (
        "parquet named .csv",
        "table.csv",
        parquet_bytes(customers_frame(rows=20)),
        ("named .csv", "content is parquet"),
    ),
    ("text named .parquet", "t.parquet", b"a,b\n1,2\n", ("named .parquet", "not parquet")),
    ("text named .npz", "arrays.npz", b"x,y\n1,2\n", ("named .npz", "not npz")),
    ("truncated parquet", "t.parquet", b"PAR1" + b"\x00" * 64, ("not a readable parquet",)),
    ("parquet magic only", "t.parquet", b"PAR1", ("not a readable parquet", "the upload")),
    ("unsupported suffix", "sheet.xlsx", b"PK\x03\x04", ("'.xlsx'", ".csv, .parquet or .npz")),
    ("pickled npz", "arrays.npz", _object_npz(), ("cannot be loaded safely", "allow_pickle")),
    ("npz without y", "arrays.npz", npz_bytes(x=np.zeros((3, 2))), ("missing ['y']",)),
    (
        "npz rows differ",
        "arrays.npz",
        npz_bytes(x=np.zeros((3, 2)), y=np.zeros(4)),
        ("'x' has 3 rows but 'y' has 4",),
    ),
]


def _assert_only_dataset(api: httpx.Client, settings: Settings, good: dict[str, Any]) -> None:
    """`good` is still listed, readable and on disk, and no refused upload left a file."""
    listed = api.get("/api/v1/datasets").json()
    assert listed["total"] == 1
    assert [d["id"] for d in listed["items"]] == [good["id"]]  # a summary: no column profile
    assert api.get(f"/api/v1/datasets/{good['id']}").json() == good
    stored = settings.datasets_dir / f"{good['sha256']}.csv"
    assert [p.name for p in settings.datasets_dir.iterdir()] == [stored.name]


def test_bad_csv_content_is_a_422_naming_the_problem(api: httpx.Client, settings: Settings) -> None:
    good = upload_ok(api, customers_frame(rows=60), "churned")
    good_bytes = (settings.datasets_dir / f"{good['sha256']}.csv").read_bytes()

    for case, content, target, needles in BAD_CSV:
        data = content.encode() if isinstance(content, str) else content
        _refused(case, upload(api, data, filename="bad.csv", target=target), 422, *needles)
    body = _refused("no target field", upload(api, good_bytes), 422, "name the target column")
    assert body["errors"][0]["loc"] == ["body", "target"]
    _refused("bad task", upload(api, good_bytes, target="churned", task="ranking"), 422, "task")
    # The stored file's very bytes, refused: its content-addressed copy must survive.
    _refused("same bytes", upload(api, good_bytes, target="nope"), 422, "'nope'")

    _assert_only_dataset(api, settings, good)
    assert (settings.datasets_dir / f"{good['sha256']}.csv").read_bytes() == good_bytes


def test_file_that_is_not_what_it_claims_is_refused(api: httpx.Client, settings: Settings) -> None:
    good = upload_ok(api, customers_frame(rows=60), "churned")

    for case, filename, content, needles in BAD_FILES:
        target = None if filename.endswith(".npz") else "b"
        response = upload(api, content, filename=filename, target=target)
        _refused(case, response, 422, *needles)
        # The reader's message must not show where the server keeps its files.
        assert str(settings.data_dir) not in response.text, case
        assert ".upload-" not in response.text, case

    _assert_only_dataset(api, settings, good)


def test_uploads_over_the_limits_are_refused(settings: Settings) -> None:
    small = settings.model_copy(update={"max_upload_mb": 1, "max_rows": 50, "max_columns": 4})
    zeros = io.BytesIO()
    np.savez_compressed(zeros, x=np.zeros(1_100_000))  # 8.8 MB unpacked
    with LiveServer(small) as live, httpx.Client(base_url=live.url, timeout=30) as api:
        big = b"a,b\n" + b"1,2\n" * 300_000
        _refused("over 1 MB", upload(api, big, target="b"), 413, "larger than the limit of 1 mb")
        _refused(
            "zip bomb",
            upload(api, zeros.getvalue(), filename="zeros.npz"),
            422,
            "the npz archive unpacks to",
            "over the limit of 8388608",
        )
        rows = customers_frame(rows=60)
        _refused("60 rows", upload(api, csv_bytes(rows), target="churned"), 422, "60 rows", "50")
        wide = customers_frame(rows=20).assign(extra=1.0)
        _refused("6 columns", upload(api, csv_bytes(wide), target="churned"), 422, "6 columns")

        assert api.get("/api/v1/datasets").json()["total"] == 0
    assert list(small.datasets_dir.iterdir()) == []


# (case, spec fields besides dataset_id, what the detail must name)
BAD_SPECS = [
    (
        "unknown hyperparameter",
        {"search_space": {"neurons": {"type": "int", "min": 1, "max": 4}}},
        ("search_space.neurons", "unknown hyperparameter 'neurons'", *KNOWN_HYPERPARAMETERS),
    ),
    (
        "int min > max",
        {"search_space": {"num_layers": {"type": "int", "min": 3, "max": 1}}},
        ("search_space.num_layers", "min (3) is greater than max (1)"),
    ),
    (
        "float min > max",
        {"search_space": {"dropout": {"type": "float", "min": 0.4, "max": 0.1}}},
        ("search_space.dropout", "min (0.4) is greater than max (0.1)"),
    ),
    (
        "pow2 min > max",
        {"search_space": {"units": {"type": "pow2", "min": 8, "max": 4}}},
        ("search_space.units", "min (8) is greater than max (4)"),
    ),
    (
        "pow2 min not a power of two",
        {"search_space": {"units": {"type": "pow2", "min": 24}}},
        ("search_space.units", "min=24 is not a power of two"),
    ),
    (
        "pow2 max not a power of two",
        {"search_space": {"batch_size": {"type": "pow2", "min": 16, "max": 100}}},
        ("search_space.batch_size", "max=100 is not a power of two"),
    ),
    (
        "pow2 default outside its bounds",
        {"search_space": {"units": {"type": "pow2", "min": 8, "max": 32, "default": 64}}},
        ("search_space.units", "default 64 is outside [8, 32]"),
    ),
    (
        "pow2 default outside the seeded bounds",
        {"search_space": {"units": {"type": "pow2", "default": 4096}}},
        ("search_space.units", "default 4096 is outside [8, 64]"),
    ),
    (
        "unknown activation",
        {"search_space": {"activation": {"type": "choice", "values": ["relu", "banana"]}}},
        ("search_space.activation", "unknown activation 'banana'", "'relu'", "'gelu'"),
    ),
    (
        "mixed choice",
        {"search_space": {"activation": {"type": "choice", "values": ["relu", 3]}}},
        ("search_space.activation", "same type"),
    ),
    (
        "log sampling from 0",
        {
            "search_space": {
                "learning_rate": {"type": "float", "min": 0, "max": 0.1, "sampling": "log"}
            }
        },
        ("search_space.learning_rate", "log sampling needs min > 0"),
    ),
    (
        "log sampling from a negative",
        {"search_space": {"units": {"type": "int", "min": -4, "max": 64, "sampling": "log"}}},
        ("search_space.units", "log sampling needs min > 0"),
    ),
    (
        "unknown parameter type",
        {"search_space": {"units": {"type": "banana"}}},
        ("search_space.units", "'int'", "'pow2'", "'choice'"),
    ),
    (
        "unknown algorithm",
        {"tuner": {"algorithm": "simulated_annealing"}},
        ("tuner.algorithm", "'random_search'", "'hyperband'", "'bayesian'", "'grid'"),
    ),
    ("zero epochs", {"training": {"epochs": 0}}, ("training.epochs", "greater than or equal to 1")),
    ("negative epochs", {"training": {"epochs": -5}}, ("training.epochs",)),
    ("zero max_epochs", {"tuner": {"max_epochs": 0}}, ("tuner.max_epochs",)),
    (
        "unknown objective",
        {"objective": {"name": "val_f1"}},
        ("objective.name", "unknown metric 'val_f1'", "val_accuracy", "val_loss"),
    ),
    (
        "regression metric on classification",
        {"objective": {"name": "val_mae"}},
        ("objective.name", "unknown metric 'val_mae' for classification"),
    ),
    (
        "unknown early stopping monitor",
        {"callbacks": {"early_stopping": {"monitor": "val_auc"}}},
        ("callbacks.early_stopping.monitor", "unknown metric 'val_auc'"),
    ),
    ("unknown field", {"tuner": {"trials": 5}}, ("tuner.trials", "extra")),
    (
        "grid over a tiny step",
        {
            "tuner": {"algorithm": "grid"},
            "search_space": {"dropout": {"type": "float", "min": 0, "max": 0.5, "step": 1e-300}},
        },
        ("search_space.dropout", "step 1e-300 gives more than 100000 values"),
    ),
    (
        "tiny log step",
        {
            "search_space": {
                "learning_rate": {
                    "type": "float",
                    "min": 1e-4,
                    "max": 1e-2,
                    "step": 1.0000001,
                    "sampling": "log",
                }
            }
        },
        ("search_space.learning_rate", "gives more than 100000 values"),
    ),
    (
        "bound too large for a float",
        {"search_space": {"units": {"type": "int", "min": 1, "max": 10**400}}},
        ("search_space.units", "less than or equal to 9007199254740992"),
    ),
    (
        "choice too large for a float",
        {"search_space": {"units": {"type": "choice", "values": [8, 10**400]}}},
        ("search_space.units", "finite numbers"),
    ),
    (
        "one value twice",
        {"search_space": {"dropout": {"type": "choice", "values": [0, 0.0]}}},
        ("search_space.dropout", "choice values must be unique"),
    ),
]

# JSON as Python writes it, NaN included (httpx refuses to send NaN).
NAN_SPECS = [
    ("NaN choice", '{"dropout": {"type": "choice", "values": [NaN, 0.2]}}', "dropout"),
    ("NaN fixed", '{"l2": {"type": "fixed", "value": NaN}}', "l2"),
    ("infinite fixed", '{"learning_rate": {"type": "fixed", "value": -Infinity}}', "learning_rate"),
]


def test_bad_job_spec_is_a_422_naming_the_field(api: httpx.Client) -> None:
    dataset = upload_ok(api, customers_frame(rows=60), "churned")

    for case, spec, needles in BAD_SPECS:
        response = api.post("/api/v1/jobs", json={"dataset_id": dataset["id"], **spec})
        body = _refused(case, response, 422, *needles)
        assert body["errors"], case
    for case, space, name in NAN_SPECS:
        response = api.post(
            "/api/v1/jobs",
            content=f'{{"dataset_id": "{dataset["id"]}", "search_space": {space}}}',
            headers={"content-type": "application/json"},
        )
        _refused(case, response, 422, f"search_space.{name}", "finite numbers")

    assert api.get("/api/v1/jobs").json()["total"] == 0
    assert api.get(f"/api/v1/datasets/{dataset['id']}").json() == dataset


def test_job_request_that_points_nowhere_or_is_not_json_is_refused(api: httpx.Client) -> None:
    response = api.post("/api/v1/jobs", json={"dataset_id": "no-such-dataset"})
    body = _refused("unknown dataset", response, 422, "dataset 'no-such-dataset' does not exist")
    assert body["errors"][0]["loc"] == ["body", "dataset_id"]

    response = api.post("/api/v1/jobs", json={"tuner": {"algorithm": "grid"}})
    _refused("no dataset_id", response, 422, "dataset_id", "field required")

    response = api.post(
        "/api/v1/jobs", content=b"{not json", headers={"content-type": "application/json"}
    )
    _refused("not json", response, 422, "json")
    assert api.get("/api/v1/jobs").json()["total"] == 0


def test_unknown_ids_in_paths_are_404(api: httpx.Client) -> None:
    for path in [
        "/api/v1/jobs/no-such-job",
        "/api/v1/jobs/no-such-job/trials",
        "/api/v1/jobs/no-such-job/trials/00",
        "/api/v1/jobs/no-such-job/best",
        "/api/v1/datasets/no-such-dataset",
    ]:
        name = path.split("/")[4]
        _refused(path, api.get(path), 404, f"'{name}' does not exist")
    _refused("cancel", api.post("/api/v1/jobs/no-such-job/cancel"), 404, "'no-such-job'")
    _refused("delete", api.delete("/api/v1/datasets/no-such-dataset"), 404, "'no-such-dataset'")


def test_a_nul_character_or_a_huge_offset_is_refused_alike_on_every_backend(
    api: httpx.Client, settings: Settings
) -> None:
    """PostgreSQL can neither store nor compare text with a NUL character (SQLite can), and
    an unbounded offset overflowed both: each was a 500 that schemathesis found."""
    good = upload_ok(api, customers_frame(rows=60), "churned")
    job = submit(api, good["id"])
    for path in [
        "/api/v1/jobs/%00",
        "/api/v1/jobs/a%00b/trials",
        f"/api/v1/jobs/{job['id']}/trials/%00",
        f"/api/v1/jobs/{job['id']}/trials/%00/metrics.csv",
        "/api/v1/datasets/%00",
    ]:
        _refused(path, api.get(path), 404, "\\x00")
    _refused("cancel", api.post("/api/v1/jobs/%00/cancel"), 404, "\\x00")
    _refused("delete", api.delete("/api/v1/datasets/%00"), 404, "\\x00")
    response = api.post("/api/v1/jobs", json={"dataset_id": "a\x00b"})
    body = _refused("dataset_id", response, 422, "does not exist")
    assert body["errors"][0]["loc"] == ["body", "dataset_id"]

    for path in ["/api/v1/datasets", "/api/v1/jobs", f"/api/v1/jobs/{job['id']}/trials"]:
        _refused(path, api.get(path, params={"offset": 2**64}), 422, "offset")

    good_csv = csv_bytes(customers_frame(rows=60))
    body = _refused("name", upload(api, good_csv, target="churned", name="a\x00b"), 422, "NUL")
    assert body["errors"][0]["loc"] == ["body", "name"]
    renamed = customers_frame(rows=60).rename(columns={"plan": "pl\x00an"})
    response = upload(api, parquet_bytes(renamed), filename="t.parquet", target="churned")
    _refused("column name", response, 422, "column name", "NUL")
    for column, value in [("plan", "p\x00ro"), ("churned", "y\x00es")]:
        frame = customers_frame(rows=60)
        frame.loc[3, column] = value
        response = upload(api, parquet_bytes(frame), filename="t.parquet", target="churned")
        _refused(column, response, 422, f"column {column!r}", "NUL", "row 4")

    _assert_only_dataset(api, settings, good)
