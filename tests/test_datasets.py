"""Uploading datasets over HTTP: profiling CSV, Parquet and NPZ; listing, reading, deleting."""

from __future__ import annotations

import hashlib

import httpx
import numpy as np
import pandas as pd

from app.settings import Settings
from tests.factories import (
    assert_problem,
    csv_bytes,
    customers_frame,
    npz_bytes,
    parquet_bytes,
    regression_frame,
    submit,
    upload,
    upload_ok,
)

# customers_frame(240): "age (years)" is blank on rows where index % 17 == 3 (14 rows) and
# "home city" on rows where index % 23 == 5 (11 rows). Encoded width: 2 numbers, home city
# 3 cities + [missing] + 1 OOV slot = 5, plan 2 + 1 OOV slot = 3 -> 10 features;
# 2 * 10 = 20 -> 2^5 = 32 recommended units, range [2^3, 2^6].
CUSTOMER_COLUMNS = ["age (years)", "income/yr", "home city", "plan"]
CUSTOMER_MISSING = {"age (years)": 14, "income/yr": 0, "home city": 11, "plan": 0, "churned": 0}


def test_real_world_csv_is_profiled(api: httpx.Client, settings: Settings) -> None:
    content = csv_bytes(customers_frame())
    response = upload(api, content, filename="customers.csv", target="churned")

    assert response.status_code == 201, response.text
    ds = response.json()
    assert ds["name"] == "customers.csv"
    assert ds["format"] == "csv"
    assert ds["rows"] == 240
    assert ds["rows_dropped"] == 0
    assert ds["target"] == "churned"
    assert ds["input_columns"] == CUSTOMER_COLUMNS
    assert [(c["name"], c["kind"], c["categories"]) for c in ds["columns"]] == [
        ("age (years)", "numeric", None),
        ("income/yr", "numeric", None),
        ("home city", "categorical", 4),
        ("plan", "categorical", 2),
    ]
    assert ds["features"] == 10
    assert ds["task"] == "classification"
    assert ds["classes"] == ["no", "yes"]
    assert ds["missing"] == CUSTOMER_MISSING
    assert ds["recommended_units"] == 32
    assert ds["units_range"] == [8, 64]
    assert ds["sha256"] == hashlib.sha256(content).hexdigest()
    assert ds["size_bytes"] == len(content)
    assert (settings.datasets_dir / f"{ds['sha256']}.csv").read_bytes() == content


def test_hand_written_csv_counts_a_missing_category_as_its_own_entry(api: httpx.Client) -> None:
    content = (
        "temp / °C,wind speed (km/h),sky,played\n"
        "21.5,3,sunny,yes\n"
        "18.0,,rain,no\n"
        "25.1,1,sunny,yes\n"
        ",7,,no\n"
        "19.4,2,cloudy,yes\n"
        "15.2,9,rain,\n"
    ).encode()
    response = upload(api, content, filename="weather.csv", target="played", name="weather")

    assert response.status_code == 201, response.text
    ds = response.json()
    assert ds["name"] == "weather"
    # The row without a target is left out of training but still counted in `missing`.
    assert ds["rows"] == 5
    assert ds["rows_dropped"] == 1
    assert ds["input_columns"] == ["temp / °C", "wind speed (km/h)", "sky"]
    # 2 numbers + sky {sunny, rain, cloudy, [missing]} + 1 OOV slot = 7; 14 -> 16.
    assert ds["features"] == 7
    assert ds["columns"][2] == {"name": "sky", "kind": "categorical", "missing": 1, "categories": 4}
    assert ds["missing"] == {"temp / °C": 1, "wind speed (km/h)": 1, "sky": 1, "played": 1}
    assert ds["recommended_units"] == 16
    assert ds["units_range"] == [4, 32]


def test_parquet_keeps_the_same_profile(api: httpx.Client) -> None:
    frame = customers_frame()
    response = upload(api, parquet_bytes(frame), filename="customers.parquet", target="churned")

    assert response.status_code == 201, response.text
    ds = response.json()
    assert ds["format"] == "parquet"
    assert ds["rows"] == 240
    assert ds["input_columns"] == CUSTOMER_COLUMNS
    assert ds["features"] == 10
    assert ds["classes"] == ["no", "yes"]
    assert ds["missing"] == CUSTOMER_MISSING
    assert (ds["recommended_units"], ds["units_range"]) == (32, [8, 64])


def test_npz_reads_x_and_y_with_y_as_the_default_target(api: httpx.Client) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 4))
    y = (x[:, 0] > 0).astype("int64")
    response = upload(api, npz_bytes(x=x, y=y), filename="arrays.npz")

    assert response.status_code == 201, response.text
    ds = response.json()
    assert ds["format"] == "npz"
    assert ds["target"] == "y"
    assert ds["rows"] == 60
    assert ds["input_columns"] == ["x0", "x1", "x2", "x3"]
    assert ds["features"] == 4
    assert ds["task"] == "classification"
    assert ds["classes"] == [0, 1]
    assert (ds["recommended_units"], ds["units_range"]) == (8, [2, 16])


def _integer_target_frame(distinct: int, rows: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(2)
    return pd.DataFrame(
        {
            "a": rng.normal(size=rows),
            "b": rng.normal(size=rows),
            "grade": np.arange(rows) % distinct,
        }
    )


def test_task_is_inferred_from_the_target(api: httpx.Client) -> None:
    floats = upload_ok(api, regression_frame(features=3), "target value")
    assert (floats["task"], floats["classes"]) == ("regression", None)
    assert floats["input_columns"] == ["f0", "f1", "f2"]
    assert floats["features"] == 3
    assert (floats["recommended_units"], floats["units_range"]) == (8, [2, 16])

    few = upload_ok(api, _integer_target_frame(3), "grade")
    assert (few["task"], few["classes"]) == ("classification", [0, 1, 2])

    # Past 20 distinct whole numbers a target reads as a quantity, not as labels.
    many = upload_ok(api, _integer_target_frame(40), "grade")
    assert (many["task"], many["classes"]) == ("regression", None)


def test_task_form_field_overrides_the_inference(api: httpx.Client) -> None:
    few = upload(api, csv_bytes(_integer_target_frame(3)), target="grade", task="regression")
    assert few.status_code == 201, few.text
    assert (few.json()["task"], few.json()["classes"]) == ("regression", None)

    many = upload(api, csv_bytes(_integer_target_frame(40)), target="grade", task="classification")
    assert many.status_code == 201, many.text
    assert (many.json()["task"], many.json()["classes"]) == ("classification", list(range(40)))


def test_list_get_and_delete(api: httpx.Client, settings: Settings) -> None:
    first = upload_ok(api, customers_frame(), "churned")
    second = upload_ok(api, regression_frame(), "target value")

    listed = api.get("/api/v1/datasets").json()
    assert listed["total"] == 2
    assert (listed["limit"], listed["offset"]) == (50, 0)
    assert [d["id"] for d in listed["items"]] == [second["id"], first["id"]]  # newest first
    page = api.get("/api/v1/datasets", params={"limit": 1, "offset": 1}).json()
    assert page["total"] == 2
    assert [d["id"] for d in page["items"]] == [first["id"]]

    read = api.get(f"/api/v1/datasets/{first['id']}")
    assert read.status_code == 200
    assert read.json() == first

    stored = settings.datasets_dir / f"{first['sha256']}.csv"
    assert stored.exists()
    deleted = api.delete(f"/api/v1/datasets/{first['id']}")
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert not stored.exists()
    assert_problem(api.get(f"/api/v1/datasets/{first['id']}"), 404, first["id"])
    assert_problem(api.delete(f"/api/v1/datasets/{first['id']}"), 404, first["id"])
    assert [d["id"] for d in api.get("/api/v1/datasets").json()["items"]] == [second["id"]]


def test_same_bytes_twice_share_a_file_that_outlives_one_delete(
    api: httpx.Client, settings: Settings
) -> None:
    # Two datasets of the same bytes (the same file and target would be one dataset: 200).
    frame = customers_frame(rows=60)
    first, second = upload_ok(api, frame, "churned"), upload_ok(api, frame, "plan")
    assert first["id"] != second["id"]
    assert first["sha256"] == second["sha256"]
    stored = settings.datasets_dir / f"{first['sha256']}.csv"

    assert api.delete(f"/api/v1/datasets/{first['id']}").status_code == 204
    assert stored.exists()
    assert api.delete(f"/api/v1/datasets/{second['id']}").status_code == 204
    assert not stored.exists()


def test_delete_refused_while_a_job_uses_the_dataset(api: httpx.Client, settings: Settings) -> None:
    ds = upload_ok(api, customers_frame(rows=60), "churned")
    job = submit(api, ds["id"])
    assert job["status"] == "queued"

    body = assert_problem(api.delete(f"/api/v1/datasets/{ds['id']}"), 409, ds["id"], "1 job")
    assert body["title"] == "Dataset in use"
    assert api.get(f"/api/v1/datasets/{ds['id']}").json() == ds
    assert (settings.datasets_dir / f"{ds['sha256']}.csv").exists()
