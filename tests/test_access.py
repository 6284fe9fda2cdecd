"""TUNER_API_KEYS: a bearer key on every API route, and each key sees only its own data."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select, update

from app.keys import ApiKeyError, Keyring, bind_host
from app.settings import Settings
from app.store.job_files import best_model_path
from app.store.models import Dataset, Job, JobStatus, Trial, TrialEpoch
from app.store.unit_of_work import write_session
from tests.conftest import LiveServer
from tests.factories import assert_problem, customers_frame, submit, upload, upload_ok

KEY_A = "key-a-4f1d9c0e6b2a8d7f"
KEY_B = "key-b-93e0c5a1d6f47b28"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def hashed(key: str) -> str:
    """What the README's one-liner prints for `key`."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


@contextmanager
def live_api(settings: Settings, key: str | None = None) -> Iterator[httpx.Client]:
    headers = bearer(key) if key else {}
    with (
        LiveServer(settings) as live,
        httpx.Client(base_url=live.url, timeout=30, headers=headers) as client,
    ):
        yield client


def _finish_with_a_trial(engine: Engine, settings: Settings, job_id: str) -> None:
    """Make the job look like a finished search: one completed trial with a curve, a model."""
    with write_session(engine) as session:
        trial = Trial(
            job_id=job_id,
            trial_id="00",
            status="COMPLETED",
            hyperparameters={"num_layers": 1, "units_0": 8},
            score=0.75,
            best_epoch=0,
            epochs_run=1,
        )
        session.add(trial)
        session.flush()
        metrics = {"loss": 0.5, "val_loss": 0.6, "accuracy": 0.7, "val_accuracy": 0.75}
        session.add(TrialEpoch(trial_pk=trial.id, epoch=0, loss=0.5, val_loss=0.6, metrics=metrics))
        session.execute(update(Job).where(Job.id == job_id).values(status=JobStatus.SUCCEEDED))
    path = best_model_path(settings, job_id)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not really a keras file")


def test_requests_without_a_valid_key_all_get_the_same_401(settings: Settings) -> None:
    keyed = settings.model_copy(update={"api_keys": f"{KEY_A}, {KEY_B}", "max_upload_mb": 1})
    with live_api(keyed) as api:
        answers = {
            "no header": api.get("/api/v1/datasets"),
            "unknown key": api.get("/api/v1/datasets", headers=bearer("not-a-key")),
            "a key's prefix": api.get("/api/v1/datasets", headers=bearer(KEY_A[:-1])),
            "key plus more": api.get("/api/v1/datasets", headers=bearer(KEY_A + "x")),
            "empty bearer": api.get("/api/v1/datasets", headers={"Authorization": "Bearer"}),
            "bare key": api.get("/api/v1/datasets", headers={"Authorization": KEY_A}),
            "basic scheme": api.get(
                "/api/v1/datasets", headers={"Authorization": f"Basic {KEY_A}"}
            ),
            "non-ascii key": api.get(
                "/api/v1/datasets", headers={"Authorization": "Bearer clé".encode()}
            ),
            "job route": api.get("/api/v1/jobs/whatever/trials"),
            "unknown route": api.get("/api/v1/no-such-thing", headers=bearer("not-a-key")),
            "job submission": api.post("/api/v1/jobs", json={"dataset_id": "x"}),
            # Over the 1 MB cap: a 413 would mean the body was read before the key was checked.
            "big upload": upload(api, b"a,b\n" + b"1,2\n" * 600_000, target="b"),
        }
        bodies = []
        for why, response in answers.items():
            body = assert_problem(response, 401, "api key")
            assert response.headers["www-authenticate"] == "Bearer", why
            bodies.append(body)
        assert all(body == bodies[0] for body in bodies), bodies

        # The open endpoints need no key.
        assert api.get("/healthz").json()["database"] == "ok"
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert api.get(path).status_code == 200, path
        # Every API operation documents the key and its 401 (Swagger UI's Authorize button).
        schema = api.get("/openapi.json").json()
        operations = [
            operation
            for path, item in schema["paths"].items()
            if path.startswith("/api/v1/")
            for operation in item.values()
        ]
        assert len(operations) > 15
        for operation in operations:
            assert "401" in operation["responses"], operation["operationId"]
            assert operation["security"] == [{"HTTPBearer": []}], operation["operationId"]
        assert "security" not in schema["paths"]["/healthz"]["get"]

        # Either key gets in; the scheme name is case-insensitive.
        for key in (KEY_A, KEY_B):
            assert api.get("/api/v1/datasets", headers=bearer(key)).status_code == 200
        lower = {"Authorization": f"bearer {KEY_A}"}
        assert api.get("/api/v1/datasets", headers=lower).status_code == 200


def test_a_key_sees_only_its_own_datasets_and_jobs(settings: Settings, engine: Engine) -> None:
    keyed = settings.model_copy(update={"api_keys": f"{KEY_A},{KEY_B}"})
    frame = customers_frame(rows=60)
    with live_api(keyed, KEY_A) as a, live_api(keyed, KEY_B) as b:
        dataset = upload_ok(a, frame, "churned")
        job = submit(a, dataset["id"], tuner={"algorithm": "random_search", "max_trials": 2})
        spare = submit(a, dataset["id"], tuner={"algorithm": "random_search", "max_trials": 2})
        _finish_with_a_trial(engine, keyed, job["id"])
        ds, jb = f"/api/v1/datasets/{dataset['id']}", f"/api/v1/jobs/{job['id']}"

        # A sees and reaches everything it made.
        assert a.get("/api/v1/datasets").json()["total"] == 1
        assert a.get("/api/v1/jobs").json()["total"] == 2
        assert a.get("/api/v1/jobs", params={"status": "succeeded"}).json()["total"] == 1
        assert a.get(ds).status_code == 200
        for path in (jb, f"{jb}/trials", f"{jb}/trials/00", f"{jb}/best", f"{jb}/model"):
            assert a.get(path).status_code == 200, path
        for path in (f"{jb}/trials.csv", f"{jb}/trials/00/metrics.csv", f"{jb}/search_space"):
            assert a.get(path).status_code == 200, path
        # Past the ownership check: the rows are validated (this needs no TensorFlow).
        assert_problem(a.post(f"{jb}/predict", json={"rows": [{}]}), 422, "missing column")
        assert_problem(a.post(f"{jb}/cancel"), 409, "already finished")

        # B is told each of them does not exist, exactly as for an id nobody has.
        for path in (ds, jb, f"{jb}/trials", f"{jb}/trials/00", f"{jb}/best", f"{jb}/model"):
            assert_problem(b.get(path), 404, "does not exist")
        for path in (f"{jb}/trials.csv", f"{jb}/trials/00/metrics.csv", f"{jb}/search_space"):
            assert_problem(b.get(path), 404, "does not exist")
        assert_problem(b.get(f"{jb}/tensorboard"), 404, "does not exist")
        assert_problem(b.post(f"{jb}/predict", json={"rows": [{}]}), 404, "does not exist")
        for target in (job, spare):
            assert_problem(b.post(f"/api/v1/jobs/{target['id']}/cancel"), 404, "does not exist")
        assert_problem(b.delete(ds), 404, "does not exist")
        mine = b.post("/api/v1/jobs", json={"dataset_id": dataset["id"]})
        nobody = b.post("/api/v1/jobs", json={"dataset_id": "0" * 32})
        for response in (mine, nobody):
            body = assert_problem(response, 422, "unknown dataset")
            assert body["errors"][0]["loc"] == ["body", "dataset_id"]
        for path in ("/api/v1/datasets", "/api/v1/jobs"):
            page = b.get(path).json()
            assert (page["total"], page["items"]) == (0, [])

        # Nothing B tried changed A's data: the queued job is still queued.
        assert a.get(f"/api/v1/jobs/{spare['id']}").json()["status"] == "queued"
        assert a.get(ds).status_code == 200

        # The same file uploaded by B is B's own dataset; deleting it keeps A's file on disk
        # (identical uploads share one content-addressed file).
        theirs = upload_ok(b, frame, "churned")
        assert theirs["sha256"] == dataset["sha256"]
        assert theirs["id"] != dataset["id"]
        assert [d["id"] for d in b.get("/api/v1/datasets").json()["items"]] == [theirs["id"]]
        assert_problem(a.get(f"/api/v1/datasets/{theirs['id']}"), 404, "does not exist")
        assert b.delete(f"/api/v1/datasets/{theirs['id']}").status_code == 204
        assert list(keyed.datasets_dir.glob(f"{dataset['sha256']}.*"))
        assert_problem(a.delete(ds), 409, "used by 2 job(s)")

    with write_session(engine) as session:
        owners = set(session.scalars(select(Dataset.owner)).all())
        owners |= set(session.scalars(select(Job.owner)).all())
    assert owners == {hashed(KEY_A)[7:23]}  # the owner id: sha256(key)[:16]


def test_a_hashed_keys_file_works_and_names_the_same_owners(
    settings: Settings, tmp_path: Path
) -> None:
    keys_file = tmp_path / "api-keys"
    keys_file.write_text(
        f"# one hashed key per line\n\n{hashed(KEY_A)}\nsha256:{hashed(KEY_B)[7:].upper()}\n"
    )
    plain = settings.model_copy(update={"api_keys": KEY_A})
    with live_api(plain, KEY_A) as a:
        dataset = upload_ok(a, customers_frame(rows=60), "churned")

    from_file = settings.model_copy(update={"api_keys": f"@{keys_file}"})
    with live_api(from_file, KEY_A) as a, live_api(from_file, KEY_B) as b:
        assert a.get(f"/api/v1/datasets/{dataset['id']}").status_code == 200
        assert b.get("/api/v1/datasets").json()["total"] == 0
        assert_problem(a.get("/api/v1/jobs", headers=bearer(hashed(KEY_A))), 401)
        assert_problem(a.get("/api/v1/jobs", headers=bearer(hashed(KEY_A)[7:])), 401)


def test_without_keys_nothing_is_owned_and_everything_is_visible(
    settings: Settings, engine: Engine
) -> None:
    with write_session(engine) as session:
        session.add(
            Dataset(
                owner="0123456789abcdef",
                name="made with a key",
                format="csv",
                sha256="0" * 64,
                size_bytes=1,
                rows=1,
                target="y",
                task="regression",
                columns=[],
                features=1,
            )
        )
    with live_api(settings) as api:
        mine = upload_ok(api, customers_frame(rows=60), "churned")
        names = {d["name"] for d in api.get("/api/v1/datasets").json()["items"]}
        assert names == {"made with a key", "data.csv"}
    with write_session(engine) as session:
        assert session.get_one(Dataset, mine["id"]).owner is None


@pytest.mark.parametrize(
    ("value", "keys"),
    [
        (None, None),
        ("", None),
        ("  ", None),
        ("k1", ["k1"]),
        (" k1 , k2,,", ["k1", "k2"]),
    ],
)
def test_keys_are_read_from_a_comma_separated_list(value: str | None, keys: Any) -> None:
    keyring = Keyring.parse(value)
    if keys is None:
        assert keyring is None
    else:
        assert keyring is not None
        assert keyring.digests == tuple(hashed(k)[7:] for k in keys)
        assert keyring.owner_of(keys[0]) == hashed(keys[0])[7:23]
        assert keyring.owner_of(keys[0] + " ") is None


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (None, "cannot read"),
        ("# only a comment\n", "holds no key"),
        (f"{hashed('k')}\nsecret-in-the-clear\n", ":2: expected sha256:<64 hex digits>"),
        ("sha256:abc\n", ":1: expected sha256"),
    ],
)
def test_a_bad_keys_file_is_refused_without_echoing_it(
    tmp_path: Path, content: str | None, error: str
) -> None:
    path = tmp_path / "keys"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ApiKeyError, match=re.escape(error)) as caught:
        Keyring.parse(f"@{path}")
    assert "secret-in-the-clear" not in str(caught.value)


def test_a_non_ascii_key_matches_the_bytes_a_client_sends() -> None:
    keyring = Keyring.parse("clé-ключ")
    assert keyring is not None
    as_starlette_decodes_it = "clé-ключ".encode().decode("latin-1")
    assert keyring.owner_of(as_starlette_decodes_it) == hashed("clé-ключ")[7:23]
    assert keyring.owner_of("clé-ключ") is None  # not latin-1: no client could send it


def test_a_hashed_key_in_the_list_is_refused() -> None:
    with pytest.raises(ApiKeyError, match="go in a file"):
        Keyring.parse(f"plain,{hashed('k')}")


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.7", "127.0.0.1"])
def test_without_keys_the_api_binds_to_loopback_and_says_so(
    host: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="app.api.auth"):
        assert bind_host(Settings(host=host, api_keys=None)) == "127.0.0.1"
    [record] = caplog.records
    assert "TUNER_API_KEYS is unset" in record.getMessage()
    assert "127.0.0.1 only" in record.getMessage()
    assert (f"TUNER_HOST={host} is ignored" in record.getMessage()) == (host != "127.0.0.1")


def test_with_keys_the_api_binds_where_it_is_told(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="app.api.auth"):
        assert bind_host(Settings(host="0.0.0.0", api_keys=KEY_A)) == "0.0.0.0"
    assert not caplog.records
