"""DELETE /v1/jobs/{id}, bounded job documents and strict job ids, through the real app."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from conftest import HEART_CSV, wait_for
from tabops.config import Settings
from tabops.jobs import service as job_service
from tabops.server.app import create_app

JOBS = "/v1/models/heart-failure/jobs"


@pytest.fixture
def records() -> list[dict]:
    heart = pd.read_csv(HEART_CSV).drop(columns=["DEATH_EVENT"])
    return pd.concat([heart] * 4, ignore_index=True).to_dict("records")  # 1,196 records


@pytest.fixture
def jobs_client(home: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(home=home, job_workers=1))) as client:
        yield client


@pytest.fixture
def idle_client(home: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(home=home, job_workers=0))) as client:
        yield client


def submit(client: TestClient, records: list[dict]) -> str:
    response = client.post(JOBS, json={"records": records})
    assert response.status_code == 202, response.text
    job_id: str = response.json()["job_id"]
    return job_id


def assert_job_not_found(response, job_id: str) -> None:
    assert response.status_code == 404, response.text
    error = response.json()["error"]
    assert error["code"] == "job_not_found"
    assert error["message"] == f"no job with id {job_id!r}"


def test_deleting_a_finished_job_removes_its_record_and_files(jobs_client, records, home):
    job_id = submit(jobs_client, records[:5])
    assert wait_for(jobs_client, f"/v1/jobs/{job_id}")["status"] == "succeeded"
    assert (home / "jobs" / job_id / "result.json").is_file()

    response = jobs_client.delete(f"/v1/jobs/{job_id}")

    assert response.status_code == 204
    assert response.content == b""
    assert not (home / "jobs" / job_id).exists()
    for url in (f"/v1/jobs/{job_id}", f"/v1/jobs/{job_id}/result"):
        assert_job_not_found(jobs_client.get(url), job_id)
    assert_job_not_found(jobs_client.delete(f"/v1/jobs/{job_id}"), job_id)
    assert jobs_client.get("/v1/jobs").json() == []


def test_deleting_a_queued_job_cancels_it_for_good(home, records):
    with TestClient(create_app(Settings(home=home, job_workers=0))) as client:
        cancelled, kept = submit(client, records[:2]), submit(client, records[:3])
        assert client.delete(f"/v1/jobs/{cancelled}").status_code == 204
    with TestClient(create_app(Settings(home=home, job_workers=1))) as client:
        assert wait_for(client, f"/v1/jobs/{kept}")["status"] == "succeeded"
        assert_job_not_found(client.get(f"/v1/jobs/{cancelled}"), cancelled)
        assert [job["job_id"] for job in client.get("/v1/jobs").json()] == [kept]
    assert not (home / "jobs" / cancelled).exists()


def test_a_running_job_cannot_be_deleted(idle_client, records, home):
    job_id = submit(idle_client, records[:2])
    idle_client.app.state.jobs.store.claim(job_id, "elsewhere:1:1.000")

    response = idle_client.delete(f"/v1/jobs/{job_id}")

    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "job_not_finished"
    assert error["message"] == f"job {job_id} is running; it can be deleted once it has finished"
    assert idle_client.get(f"/v1/jobs/{job_id}").json()["status"] == "running"
    assert (home / "jobs" / job_id / "input.json").is_file()


@pytest.mark.parametrize(
    "job_id", ["...", "%2e%2e", "0123", "A" * 32, "0" * 33, "0" * 31 + "g", "x" * 64]
)
def test_a_malformed_job_id_is_a_job_not_found_everywhere(idle_client, job_id):
    shown = job_id.replace("%2e", ".")
    for url in (f"/v1/jobs/{job_id}", f"/v1/jobs/{job_id}/result", f"/v1/jobs/{job_id}/errors"):
        assert_job_not_found(idle_client.get(url), shown)
    assert_job_not_found(idle_client.delete(f"/v1/jobs/{job_id}"), shown)


def test_a_long_malformed_id_is_not_echoed_whole(idle_client):
    response = idle_client.get(f"/v1/jobs/{'x' * 5000}")
    assert response.status_code == 404
    assert response.json()["error"]["message"] == f"no job with id {'x' * 64 + '...'!r}"


def test_a_large_result_is_only_downloaded_and_never_read_for_the_document(
    jobs_client, records, home
):
    job_id = submit(jobs_client, records[:1_001])
    job = wait_for(jobs_client, f"/v1/jobs/{job_id}")
    assert job["status"] == "succeeded", job
    assert job["result"]["rows"] == 1_001
    assert job["result"]["predictions"] is None
    assert job["result_url"] == f"/v1/jobs/{job_id}/result"
    download = jobs_client.get(job["result_url"])
    assert len(download.json()["predictions"]) == 1_001

    # The document is built from the record alone: a result that is not even JSON is
    # never opened for it.
    (home / "jobs" / job_id / "result.json").write_bytes(b"\x00 not json")
    again = jobs_client.get(f"/v1/jobs/{job_id}")
    assert again.status_code == 200
    assert again.json()["result"] == job["result"]


def test_a_result_of_at_most_1000_predictions_is_inlined(jobs_client, records):
    job = wait_for(jobs_client, f"/v1/jobs/{submit(jobs_client, records[:1_000])}")
    assert job["status"] == "succeeded", job
    predictions = job["result"]["predictions"]
    assert len(predictions) == 1_000
    assert predictions == jobs_client.get(job["result_url"]).json()["predictions"]
    listed = jobs_client.get("/v1/jobs").json()
    assert "predictions" not in listed[0]["result"]


def test_a_result_file_over_the_byte_bound_is_not_inlined(jobs_client, records, monkeypatch):
    monkeypatch.setattr(job_service, "INLINE_BYTES", 1_000)
    job = wait_for(jobs_client, f"/v1/jobs/{submit(jobs_client, records[:20])}")
    assert job["status"] == "succeeded", job
    assert job["result"]["rows"] == 20
    assert job["result"]["predictions"] is None


def test_the_delete_route_is_documented(idle_client):
    operation = idle_client.get("/openapi.json").json()["paths"]["/v1/jobs/{job_id}"]["delete"]
    assert {"204", "404", "409"} <= set(operation["responses"])
    assert "queued" in operation["description"]
