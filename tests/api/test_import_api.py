"""POST /v1/models/{name}/versions: a model trained elsewhere, imported through the real app.

Models are fitted here on the heart-failure example and sent as a user would: a joblib
file, a hostile pickle, a zipped MLflow folder, each with a CSV sample.
"""

from __future__ import annotations

import io
import os
import pickle
import time
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from import_models import (
    HEART_FEATURES,
    HEART_TARGET,
    Hostile,
    heart_frame,
    heart_pipeline,
    write_mlflow_folder,
)
from tabops.config import Settings
from tabops.database import create_database_engine
from tabops.security.keys import KeyStore
from tabops.server.app import create_app
from tabops.server.uploads import STALE_SECONDS

MODEL = "imported-heart"
VERSIONS = f"/v1/models/{MODEL}/versions"
PREDICT = f"/v1/models/{MODEL}/predict"
TOLERANCE = 1e-9
ROUTE = "POST /v1/models/{name}/versions"  # the action the audit log records
TIMEOUT_SECONDS = 1.5
SLEEP_SECONDS = 5.0  # longer than TIMEOUT_SECONDS, whatever the machine's load


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two fitted pipelines as joblib files, their sample, a hostile pickle and its marker."""
    folder = tmp_path_factory.mktemp("models")
    frame = heart_frame()
    first, second = heart_pipeline(frame), heart_pipeline(frame, 0.01)
    joblib.dump(first, folder / "first.joblib")
    joblib.dump(second, folder / "second.joblib")
    frame.to_csv(folder / "sample.csv", index=False)
    marker = folder / "marker"
    (folder / "hostile.pkl").write_bytes(pickle.dumps(Hostile(marker)))
    return {"folder": folder, "frame": frame, "first": first, "second": second, "marker": marker}


def open_app(home: Path, **settings: Any) -> TestClient:
    app = create_app(Settings(home=home, **settings))
    app.state.policy.refresh_seconds = 0  # keys created beside the app count at once
    return TestClient(app)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def api(home: Path) -> Iterator[TestClient]:
    with open_app(home) as client:
        yield client


def form(
    files: dict[str, Any], model: str | bytes = "first.joblib", **fields: Any
) -> dict[str, Any]:
    """The multipart form of an import: the model file, the sample, and text fields."""
    folder: Path = files["folder"]
    model_part = (
        ("model.bin", model) if isinstance(model, bytes) else (model, (folder / model).read_bytes())
    )
    return {
        "files": {
            "model": model_part,
            "sample": ("sample.csv", (folder / "sample.csv").read_bytes(), "text/csv"),
        },
        "data": fields,
    }


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_error(answer: Any, status: int, code: str, field: str) -> None:
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] == code, error
    assert field in [detail["field"] for detail in error["details"]], error


def assert_no_upload_left(home: Path) -> None:
    """No spool file or work folder is left under the upload folder."""
    uploads = home / "uploads"
    assert not uploads.exists() or list(uploads.iterdir()) == []


def assert_nothing_left(home: Path) -> None:
    """No version registered, and no upload left behind."""
    assert not list((home / "registry").rglob("manifest.json"))
    assert_no_upload_left(home)


def probabilities(client: TestClient, frame: pd.DataFrame) -> tuple[int, np.ndarray]:
    records = frame[HEART_FEATURES].to_dict(orient="records")
    answer = client.post(f"{PREDICT}/batch", json={"records": records})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    return body["version"], np.array([item["probability"] for item in body["predictions"]])


@pytest.mark.slow
def test_an_imported_pipeline_is_registered_and_predicts_as_scikit_learn(api, files, home):
    answer = api.post(VERSIONS, **form(files, target=HEART_TARGET))

    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert (body["name"], body["version"], body["aliases"]) == (MODEL, 1, ["production"])
    assert answer.headers["location"] == f"{VERSIONS}/1"
    assert api.get(answer.headers["location"]).json() == body
    assert body["manifest"]["metrics"]["roc_auc"] > 0.5
    frame = files["frame"]
    version, served = probabilities(api, frame)
    expected = files["first"].predict_proba(frame[HEART_FEATURES])[:, 1]
    assert version == 1
    np.testing.assert_allclose(served, expected, rtol=0, atol=TOLERANCE)
    assert_no_upload_left(home)


@pytest.mark.slow
def test_promoting_through_the_route_moves_predict_at_once(api, files):
    assert api.post(VERSIONS, **form(files)).status_code == 201
    frame = files["frame"].head(20)
    assert probabilities(api, frame)[0] == 1  # production (1) is now cached

    answer = api.post(VERSIONS, **form(files, "second.joblib", promote="production"))

    assert answer.status_code == 201, answer.text
    assert answer.json()["aliases"] == ["production"]
    version, served = probabilities(api, frame)
    assert version == 2
    expected = files["second"].predict_proba(frame[HEART_FEATURES])[:, 1]
    np.testing.assert_allclose(served, expected, rtol=0, atol=TOLERANCE)
    single = api.post(PREDICT, json=frame[HEART_FEATURES].iloc[0].to_dict())
    assert single.json()["version"] == 2


@pytest.mark.slow
def test_a_zipped_mlflow_folder_is_imported(api, files, home, tmp_path):
    folder = write_mlflow_folder(files["first"], tmp_path / "exported" / "model", inputs=None)
    archive = zipped({f"model/{p.name}": p.read_bytes() for p in folder.iterdir()})

    answer = api.post(VERSIONS, **form(files, archive))

    assert answer.status_code == 201, answer.text
    source = answer.json()["manifest"]["source"]
    assert source["mlflow"] is True
    assert source["mlflow_run_id"] == "4f1c2a7be5d64c0c9a3f2e1d0b9c8a7f"
    frame = files["frame"].head(20)
    expected = files["first"].predict_proba(frame[HEART_FEATURES])[:, 1]
    np.testing.assert_allclose(probabilities(api, frame)[1], expected, rtol=0, atol=TOLERANCE)
    assert_no_upload_left(home)


def test_only_an_admin_key_may_import_and_every_attempt_is_audited(api, files, home):
    keys = KeyStore(create_database_engine(Settings(home=home).metadata_url))
    _admin, admin = keys.create("ops", "admin")
    _reader, reader = keys.create("reader", "read")
    _scorer, scorer = keys.create("scorer", "predict")

    anonymous = api.post(VERSIONS, **form(files))
    read_only = api.post(VERSIONS, **form(files), headers=bearer(reader))
    predict_only = api.post(VERSIONS, **form(files), headers=bearer(scorer))

    assert anonymous.status_code == 401, anonymous.text
    assert anonymous.json()["error"]["code"] == "not_authenticated"
    assert read_only.status_code == 403, read_only.text
    assert predict_only.status_code == 403, predict_only.text
    assert_nothing_left(home)
    entries = api.get("/v1/audit", headers=bearer(admin)).json()
    seen = [(e["action"], e["status"], e["key_name"]) for e in entries]
    assert seen[:3] == [
        (ROUTE, 403, "scorer"),
        (ROUTE, 403, "reader"),
        (ROUTE, 401, None),
    ]


def test_a_hostile_pickle_is_refused_naming_what_it_would_run(api, files, home):
    answer = api.post(VERSIONS, **form(files, "hostile.pkl"))

    assert_error(answer, 422, "unsafe_model", "model")
    assert "system" in answer.json()["error"]["message"]
    assert not files["marker"].exists()
    assert_nothing_left(home)
    assert api.get("/v1/models").json() == []


def test_trusting_a_pickle_is_refused_unless_the_server_allows_it(api, files, home):
    answer = api.post(VERSIONS, **form(files, "hostile.pkl", trust_pickle="true"))

    assert_error(answer, 403, "forbidden_by_settings", "trust_pickle")
    assert "allow_trust_pickle" in answer.json()["error"]["message"]
    assert "www-authenticate" not in answer.headers  # no key would be let through
    assert not files["marker"].exists()
    assert_nothing_left(home)


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def symlink_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("model/MLmodel", b"flavors: {}\n")
        link = zipfile.ZipInfo("model/model.pkl")
        link.external_attr = (0o120777 << 16) | 0x20  # a symlink, as zip -y stores one
        archive.writestr(link, "/etc/passwd")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("archive", "problem"),
    [
        (zipped({"MLmodel": b"flavors: {}\n", "../evil": b"x"}), "not a safe relative path"),
        (zipped({"model/MLmodel": b"x", "/tmp/evil": b"x"}), "not a safe relative path"),
        (zipped({"model/MLmodel": b"x", "model/../../evil": b"x"}), "not a safe relative path"),
        (symlink_zip(), "symbolic link"),
        (zipped({"model/MLmodel": b"x", "model/big": b"\0" * 200_000}), "more than"),
        (zipped({"readme.txt": b"no model here"}), "no MLflow model"),
    ],
    ids=["dot-dot", "absolute", "nested-dot-dot", "symlink", "too-large", "no-mlmodel"],
)
def test_an_unsafe_model_archive_is_refused_and_nothing_is_unpacked(
    home, files, tmp_path, archive, problem
):
    with open_app(home, queue={"max_upload_bytes": 100_000}) as api:
        answer = api.post(VERSIONS, **form(files, archive))

    assert_error(answer, 422, "import_failed", "model")
    assert problem in answer.json()["error"]["message"]
    assert not list(tmp_path.rglob("evil"))
    assert_nothing_left(home)


def test_an_upload_beyond_the_limit_is_refused(home, files):
    with open_app(home, queue={"max_upload_bytes": 2_000}) as api:
        answer = api.post(VERSIONS, **form(files))

    assert_error(answer, 413, "upload_too_large", "body")
    assert_nothing_left(home)


def test_an_upload_without_a_length_is_cut_off_at_the_limit(home, files):
    boundary = "import-boundary"
    body = b"".join(
        [
            f"--{boundary}\r\n".encode(),
            b'Content-Disposition: form-data; name="model"; filename="first.joblib"\r\n\r\n',
            (files["folder"] / "first.joblib").read_bytes(),
            f"\r\n--{boundary}--\r\n".encode(),
        ]
    )
    chunks = (body[start : start + 1024] for start in range(0, len(body), 1024))
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}

    with open_app(home, queue={"max_upload_bytes": 2_000}) as api:
        answer = api.post(VERSIONS, content=chunks, headers=headers)

    assert "content-length" not in answer.request.headers
    assert_error(answer, 413, "upload_too_large", "body")
    assert_nothing_left(home)


def test_an_import_over_the_time_limit_is_answered_503_and_cleaned_up(home, files):
    with open_app(home, security={"request_timeout_seconds": 0.05}) as api:
        answer = api.post(VERSIONS, **form(files))

    assert answer.status_code == 503, answer.text
    assert answer.json()["error"]["code"] == "request_timeout"
    assert_nothing_left(home)


class Sleeper:
    """Unpickling it sleeps: a trusted file whose load outlasts the request timeout."""

    def __reduce__(self) -> tuple[Any, ...]:
        return time.sleep, (SLEEP_SECONDS,)


@pytest.mark.slow
def test_a_trusted_pickle_loads_where_allowed_and_a_slow_load_is_audited(home, files):
    (files["folder"] / "sleeper.pkl").write_bytes(pickle.dumps(Sleeper()))
    security = {"allow_trust_pickle": True, "request_timeout_seconds": TIMEOUT_SECONDS}
    with open_app(home, security=security) as api:
        answer = api.post(VERSIONS, **form(files, "sleeper.pkl", trust_pickle="true"))
    with open_app(home) as api:
        entries = api.get("/v1/audit").json()

    assert answer.status_code == 503, answer.text
    assert answer.json()["error"]["code"] == "request_timeout"
    assert [(e["action"], e["outcome"], e["status"]) for e in entries] == [
        (ROUTE, "request_timeout", 503)
    ]
    assert_nothing_left(home)


HOLD_DEADLINE_SECONDS = 60.0  # for the first import to reach its work folder, busy or not


@pytest.mark.slow
def test_imports_beyond_the_limit_are_refused_busy_until_one_finishes(home, files):
    (files["folder"] / "sleeper.pkl").write_bytes(pickle.dumps(Sleeper()))
    security = {"allow_trust_pickle": True, "max_concurrent_imports": 1}
    with open_app(home, security=security) as api, ThreadPoolExecutor(1) as pool:
        # The first import holds the one slot while its file loads (sleeping, in a child).
        holding = pool.submit(api.post, VERSIONS, **form(files, "sleeper.pkl", trust_pickle="true"))
        deadline = time.monotonic() + HOLD_DEADLINE_SECONDS
        while not (home / "uploads").is_dir() or not list((home / "uploads").iterdir()):
            assert time.monotonic() < deadline, "the first import never started"
            time.sleep(0.01)
        refused = api.post(VERSIONS, **form(files))
        held = holding.result()
        after = api.post(VERSIONS, **form(files))

    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["code"] == "imports_busy"
    assert int(refused.headers["retry-after"]) >= 1
    assert held.status_code == 422, held.text  # a sleep is no classifier
    assert after.status_code == 201, after.text  # the slot is free again
    assert_no_upload_left(home)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"threshold": "high"}, "threshold"),
        ({"threshold": "1.5"}, "threshold"),
        ({"trust_pickle": "maybe"}, "trust_pickle"),
        ({"gates": ["roc_auc>=0.8", "accuracy is good"]}, "gates[1]"),
        ({"gates": ["roc_auc>=0.8", "roc_auc>0.7"]}, "gates[1]"),
        ({"promote": "Prod!"}, "promote"),
        ({"colour": "blue"}, "colour"),
        ({"target": ["a", "b"]}, "target"),
    ],
)
def test_an_invalid_field_is_refused_naming_it(api, files, home, fields, field):
    answer = api.post(VERSIONS, **form(files, **fields))

    assert_error(answer, 422, "invalid_request", field)
    assert_nothing_left(home)


def test_a_missing_sample_is_named(api, files, home):
    model = (files["folder"] / "first.joblib").read_bytes()
    answer = api.post(VERSIONS, files={"model": ("first.joblib", model)})

    assert_error(answer, 422, "invalid_request", "sample")
    assert [d["field"] for d in answer.json()["error"]["details"]] == ["sample"]
    assert_nothing_left(home)


def test_a_file_that_is_no_model_is_refused(api, files, home):
    answer = api.post(VERSIONS, **form(files, b"age,sex\n1,male\n"))

    assert_error(answer, 422, "import_failed", "model")
    assert_nothing_left(home)


def test_a_sample_of_unknown_format_is_refused(api, files, home):
    model = (files["folder"] / "first.joblib").read_bytes()
    answer = api.post(
        VERSIONS,
        files={"model": ("first.joblib", model), "sample": ("rows.xlsx", b"PK\3\4", "")},
    )

    assert_error(answer, 422, "invalid_request", "sample")
    assert_nothing_left(home)


@pytest.mark.slow
def test_a_sample_that_cannot_be_read_is_named_without_the_servers_paths(api, files, home):
    model = (files["folder"] / "first.joblib").read_bytes()
    answer = api.post(
        VERSIONS,
        files={"model": ("first.joblib", model), "sample": ("rows.parquet", b"not parquet")},
    )

    assert_error(answer, 422, "invalid_data", "sample")
    assert "rows.parquet" in answer.json()["error"]["message"]
    assert str(home) not in answer.text
    assert_nothing_left(home)


def test_a_body_that_is_not_a_form_is_refused(api, home):
    answer = api.post(VERSIONS, json={"model": "first.joblib"})

    assert answer.status_code == 415, answer.text
    assert answer.json()["error"]["code"] == "unsupported_media_type"


def test_an_invalid_model_name_is_named(api, files, home):
    answer = api.post("/v1/models/Bad%20Name/versions", **form(files))

    assert_error(answer, 422, "invalid_request", "name")
    assert_nothing_left(home)


def test_the_route_is_documented_as_a_form_of_two_files(api):
    operation = api.get("/openapi.json").json()["paths"][VERSIONS.replace(MODEL, "{name}")]
    body = operation["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]

    assert body["required"] == ["model", "sample"]
    assert "allow_trust_pickle" in body["properties"]["trust_pickle"]["description"]
    assert {"201", "403", "413", "415", "422"} <= set(operation["post"]["responses"])


def test_two_model_files_are_refused_naming_the_field(api, files, home):
    model = (files["folder"] / "first.joblib").read_bytes()
    sample = (files["folder"] / "sample.csv").read_bytes()
    parts = [
        ("model", ("a.joblib", model)),
        ("model", ("b.joblib", model)),
        ("sample", ("sample.csv", sample)),
    ]

    answer = api.post(VERSIONS, files=parts)

    assert_error(answer, 422, "invalid_request", "model")
    assert_nothing_left(home)


def test_a_work_folder_left_by_a_stopped_server_is_removed_at_start_up(home):
    left = home / "uploads" / "work-left"
    (left / "model").mkdir(parents=True)
    (left / "model" / "model.joblib").write_bytes(b"half")
    long_ago = time.time() - 2 * STALE_SECONDS
    os.utime(left, (long_ago, long_ago))
    fresh = home / "uploads" / "work-live"
    fresh.mkdir()

    with open_app(home):
        pass

    assert not left.exists()
    assert fresh.exists()  # may belong to another server's import under way
