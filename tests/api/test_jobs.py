"""POST /v1/models/{name}/jobs, GET /v1/jobs/..., POST /v1/train, through the real app.

Jobs run on the app's own Huey consumer threads over a SQLite queue and database.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml
from fastapi.testclient import TestClient

from conftest import HEART_CSV, parquet_with_two_bad_rows, wait_for
from tabops.config import Settings
from tabops.model.predictor import Predictor
from tabops.registry import ModelRegistry
from tabops.scoring.local import score_file
from tabops.server.app import create_app

MODEL = "heart-failure"
JOBS = f"/v1/models/{MODEL}/jobs"
BATCH = f"/v1/models/{MODEL}/predict/batch"


@pytest.fixture
def heart() -> pd.DataFrame:
    return pd.read_csv(HEART_CSV).drop(columns=["DEATH_EVENT"])


@pytest.fixture
def jobs_client(home: Path, tmp_path: Path) -> Iterator[TestClient]:
    """An app running jobs, whose training may read the test's own folder."""
    settings = Settings(home=home, job_workers=2, project_roots=[tmp_path])
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def idle_client(home: Path) -> Iterator[TestClient]:
    """An app that takes jobs but runs none (no job threads)."""
    with TestClient(create_app(Settings(home=home, job_workers=0))) as client:
        yield client


def submit(client: TestClient, **kwargs) -> dict:
    response = client.post(JOBS, **kwargs)
    assert response.status_code == 202, response.text
    body = response.json()
    assert set(body) == {"job_id", "status", "status_url"}
    assert body["status"] == "queued"
    assert response.headers["location"] == body["status_url"] == f"/v1/jobs/{body['job_id']}"
    return body


def test_a_records_job_answers_like_the_batch_endpoint(jobs_client, heart):
    records = heart.head(40).to_dict("records")
    accepted = submit(jobs_client, json={"records": records})
    job = wait_for(jobs_client, accepted["status_url"])
    assert job["status"] == "succeeded", job
    assert job["progress"] == 1.0
    assert job["attempts"] == 1
    assert job["model"] == MODEL
    assert job["version"] == 1
    assert job["created"] <= job["started"] <= job["finished"]
    batch = jobs_client.post(BATCH, json={"records": records}).json()["predictions"]
    predictions = job["result"]["predictions"]
    assert [p["probability"] for p in predictions] == [p["probability"] for p in batch]
    assert [p["label"] for p in predictions] == [p["label"] for p in batch]
    assert job["result"]["rows"] == 40
    assert job["result"]["positives"] == sum(p["class_name"] == "dead" for p in batch)
    assert len({p["prediction_id"] for p in predictions}) == 40
    download = jobs_client.get(job["result_url"])
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("application/json")
    assert download.json()["predictions"] == predictions


def test_a_csv_body_is_scored_into_the_same_file_as_tabops_predict(
    jobs_client, heart, home, registry: ModelRegistry, tmp_path
):
    accepted = submit(
        jobs_client,
        content=heart.to_csv(index=False).encode(),
        headers={"content-type": "text/csv"},
    )
    job = wait_for(jobs_client, accepted["status_url"])
    assert job["status"] == "succeeded", job
    assert job["result"] == {
        "rows": 299,
        "positives": job["result"]["positives"],
        "invalid_rows": 0,
        "problems": [],
    }
    assert job["errors_url"] is None
    download = jobs_client.get(job["result_url"])
    assert download.headers["content-type"].startswith("text/csv")
    scored = pd.read_csv(io.BytesIO(download.content))
    source = tmp_path / "in.csv"
    heart.to_csv(source, index=False)
    score_file(Predictor.load(registry, MODEL), source, tmp_path / "out.csv")
    pd.testing.assert_frame_equal(scored, pd.read_csv(tmp_path / "out.csv"))


def test_a_parquet_form_upload_gets_a_parquet_result_and_a_list_of_bad_rows(jobs_client, heart):
    data = parquet_with_two_bad_rows(heart)
    files = {"file": ("patients.parquet", data, "application/octet-stream")}
    job = wait_for(jobs_client, submit(jobs_client, files=files)["status_url"])
    assert job["status"] == "succeeded", job
    assert job["result"]["invalid_rows"] == 2
    problems = {p["field"] for p in job["result"]["problems"]}
    assert problems == {"row 4.age", "row 8.serum_sodium"}
    scored = pd.read_parquet(io.BytesIO(jobs_client.get(job["result_url"]).content))
    assert len(scored) == 299
    assert scored["probability"].isna().sum() == 2
    errors = pd.read_csv(io.BytesIO(jobs_client.get(job["errors_url"]).content))
    assert errors["row"].tolist() == [4, 8]
    assert errors["field"].tolist() == ["age", "serum_sodium"]


def test_a_file_missing_a_column_is_refused_at_submission_and_leaves_nothing(
    jobs_client, heart, home
):
    body = heart.drop(columns=["age"]).to_csv(index=False).encode()
    response = jobs_client.post(JOBS, content=body, headers={"content-type": "text/csv"})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert error["details"] == [{"field": "age", "problem": "column is missing"}]
    assert not any((home / "jobs").iterdir())
    assert jobs_client.get("/v1/jobs").json() == []


def test_invalid_records_are_refused_naming_each_field(jobs_client, heart):
    records = heart.head(3).to_dict("records")
    records[1]["age"] = "old"
    del records[2]["time"]
    response = jobs_client.post(JOBS, json={"records": records})
    assert response.status_code == 422
    fields = {d["field"] for d in response.json()["error"]["details"]}
    assert fields == {"records[1].age", "records[2].time"}


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        (
            {"content": b"x", "headers": {"content-type": "text/plain"}},
            415,
            "unsupported_media_type",
        ),
        ({"content": b"", "headers": {"content-type": "text/csv"}}, 422, "invalid_data"),
        ({"content": b"{", "headers": {"content-type": "application/json"}}, 400, "malformed_json"),
        ({"json": {"records": []}}, 422, "invalid_input"),
        (
            {"files": {"file": ("notes.txt", b"a,b\n1,2\n", "text/plain")}},
            415,
            "unsupported_media_type",
        ),
        ({"files": {"other": ("x.csv", b"a\n1\n", "text/csv")}}, 422, "invalid_request"),
        (
            {
                "content": b"not,a\nparquet,file\n",
                "headers": {"content-type": "application/vnd.apache.parquet"},
            },
            422,
            "invalid_data",
        ),
    ],
    ids=[
        "media-type",
        "empty-file",
        "bad-json",
        "no-records",
        "txt-upload",
        "no-file-field",
        "fake-parquet",
    ],
)
def test_bad_submissions_get_a_clear_4xx(jobs_client, kwargs, status, code):
    response = jobs_client.post(JOBS, **kwargs)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def test_an_upload_over_the_size_limit_is_refused(home, heart):
    with TestClient(create_app(Settings(home=home, max_upload_bytes=1_000))) as client:
        body = heart.to_csv(index=False).encode()
        response = client.post(JOBS, content=body, headers={"content-type": "text/csv"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "upload_too_large"


def test_an_unknown_model_or_job_is_404(jobs_client):
    response = jobs_client.post("/v1/models/nope/jobs", json={"records": [{}]})
    assert response.status_code == 404
    for url in ("/v1/jobs/0123", "/v1/jobs/0123/result", "/v1/jobs/0123/errors"):
        response = jobs_client.get(url)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "job_not_found"
        assert "'0123'" in response.json()["error"]["message"]


def test_a_queued_job_has_no_result_yet(idle_client, heart):
    accepted = submit(idle_client, json={"records": heart.head(2).to_dict("records")})
    job = idle_client.get(accepted["status_url"]).json()
    assert job["status"] == "queued"
    assert job["started"] is None
    assert job["result"] is None
    response = idle_client.get(f"{accepted['status_url']}/result")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "job_not_finished"
    assert idle_client.get("/v1/jobs?status=queued").json()[0]["job_id"] == accepted["job_id"]
    assert idle_client.get("/v1/jobs?status=sleeping").status_code == 422


def test_a_queued_job_is_run_by_the_next_server_to_start(home, heart):
    records = heart.head(3).to_dict("records")
    with TestClient(create_app(Settings(home=home, job_workers=0))) as client:
        accepted = submit(client, json={"records": records})
    with TestClient(create_app(Settings(home=home, job_workers=1))) as client:
        job = wait_for(client, accepted["status_url"])
    assert job["status"] == "succeeded"
    assert job["attempts"] == 1


def test_the_version_is_fixed_when_the_job_is_accepted(idle_client, heart):
    accepted = submit(
        idle_client,
        json={"records": heart.head(1).to_dict("records")},
        params={"version": "production"},
    )
    assert idle_client.get(accepted["status_url"]).json()["version"] == 1


def fast_project(tmp_path: Path, project_dir: Path, gate: float | None = None) -> Path:
    path = project_dir / "tabops.yaml"
    document = yaml.safe_load(path.read_text())
    if gate is not None:
        document["gates"] = {"roc_auc": f">={gate}"}
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@pytest.mark.slow
def test_training_over_the_api_registers_a_version_and_reports_metrics(
    jobs_client, tmp_path, project_dir
):
    project = fast_project(tmp_path, project_dir)
    response = jobs_client.post("/v1/train", json={"project": str(project)})
    assert response.status_code == 202, response.text
    job = wait_for(jobs_client, response.json()["status_url"], timeout=180)
    assert job["status"] == "succeeded", job
    assert job["kind"] == "train"
    result = job["result"]
    assert result["model"] == MODEL
    assert result["version"] == 2
    assert result["gates_passed"] is True
    assert 0.5 < result["metrics"]["roc_auc"] <= 1.0
    assert result["promoted"] is None
    assert result["moved"] == []
    assert result["aliases"] == {"production": 1}
    assert result["alias_notes"] == [
        f"production -> 1 (unchanged; promote with: tabops models promote {MODEL} 2)"
    ]
    assert job["result_url"] is None
    model = jobs_client.get(f"/v1/models/{MODEL}").json()
    assert model["versions"] == [1, 2]
    assert model["aliases"] == {"production": 1}
    response = jobs_client.get(f"/v1/jobs/{job['job_id']}/result")
    assert response.status_code == 409


@pytest.mark.slow
def test_a_training_job_asked_to_promote_moves_the_alias_to_the_new_version(
    jobs_client, tmp_path, project_dir
):
    project = fast_project(tmp_path, project_dir)
    response = jobs_client.post(
        "/v1/train", json={"project": str(project), "promote": "production"}
    )
    assert response.status_code == 202, response.text
    job = wait_for(jobs_client, response.json()["status_url"], timeout=180)
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert result["version"] == 2
    assert result["promoted"] == "production"
    assert result["moved"] == ["production"]
    assert result["aliases"] == {"production": 2}
    assert result["alias_notes"] == ["production -> 2 (promoted, was 1)"]
    model = jobs_client.get(f"/v1/models/{MODEL}").json()
    assert model["aliases"] == {"production": 2}
    assert model["production"]["version"] == 2


@pytest.mark.slow
def test_a_training_job_that_misses_a_gate_promotes_nothing(jobs_client, tmp_path, project_dir):
    project = fast_project(tmp_path, project_dir, gate=0.9999)
    response = jobs_client.post("/v1/train", json={"project": str(project), "promote": "staging"})
    job = wait_for(jobs_client, response.json()["status_url"], timeout=180)
    assert job["status"] == "failed"
    assert "nothing was registered" in job["error"]
    model = jobs_client.get(f"/v1/models/{MODEL}").json()
    assert model["versions"] == [1]
    assert model["aliases"] == {"production": 1}


@pytest.mark.parametrize("alias", ["Production", "1st", "a b", "production\n", "", "x" * 33, 7])
def test_training_with_an_invalid_alias_to_promote_is_a_422_naming_the_field(
    jobs_client, project_dir, alias
):
    response = jobs_client.post("/v1/train", json={"project": str(project_dir), "promote": alias})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert [detail["field"] for detail in error["details"]] == ["promote"]
    assert jobs_client.get("/v1/jobs").json() == []


@pytest.mark.slow
def test_a_training_job_that_misses_a_gate_fails_saying_which(jobs_client, tmp_path, project_dir):
    project = fast_project(tmp_path, project_dir, gate=0.9999)
    response = jobs_client.post("/v1/train", json={"project": str(project.parent)})
    job = wait_for(jobs_client, response.json()["status_url"], timeout=180)
    assert job["status"] == "failed"
    assert "roc_auc" in job["error"]
    assert "nothing was registered" in job["error"]
    assert job["result"]["gates_passed"] is False
    assert jobs_client.get(f"/v1/models/{MODEL}").json()["versions"] == [1]


def test_training_a_missing_project_or_table_is_refused(jobs_client, tmp_path, project_dir):
    response = jobs_client.post("/v1/train", json={"project": str(tmp_path / "nowhere")})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_project"
    response = jobs_client.post(
        "/v1/train", json={"project": str(project_dir), "data": str(tmp_path / "none.csv")}
    )
    assert response.status_code == 422
    assert response.json()["error"]["details"] == [
        {"field": "data", "problem": "file does not exist"}
    ]
    response = jobs_client.post("/v1/train", json={"project": str(project_dir), "extra": 1})
    assert response.status_code == 422
