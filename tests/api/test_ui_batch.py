"""The batch page through the real app: an upload becomes the API's file job, followed and
downloaded from the UI with the API's access checks."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from api.test_ui_predict import log_in
from api.ui_page import Page
from conftest import HEART_CSV, parquet_with_two_bad_rows
from tabops.config import Settings
from tabops.database import create_database_engine
from tabops.security.keys import KeyStore
from tabops.server.app import create_app

MODEL = "heart-failure"
PAGE = f"/ui/models/{MODEL}/batch"
HANG_SECONDS = 60.0  # a job of 299 rows on a loaded 2-core machine takes well under this


@pytest.fixture
def heart() -> pd.DataFrame:
    return pd.read_csv(HEART_CSV).drop(columns=["DEATH_EVENT"])


@pytest.fixture
def ui(home: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(home=home, job_workers=1))) as client:
        yield client


def upload(client: TestClient, name: str, content: bytes, media: str = "text/csv", **fields):
    csrf = Page(client.get(PAGE).text).value("csrf")
    data = {"csrf": csrf, **fields}
    return client.post(
        PAGE, data=data, files={"file": (name, content, media)}, follow_redirects=False
    )


def job_id_of(answer: Any) -> str:
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    assert location.startswith("/ui/jobs/")
    return location.removeprefix("/ui/jobs/")


def wait_on_page(client: TestClient, job_id: str) -> dict[str, Any]:
    """The job page's JSON once the job has finished (polled as batch.js polls it)."""
    deadline = time.monotonic() + HANG_SECONDS
    while time.monotonic() < deadline:
        state = client.get(f"/ui/jobs/{job_id}/status").json()
        if state["is_finished"]:
            return state
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish")


def test_the_page_has_a_labelled_file_input_and_a_csrf_token(ui):
    answer = ui.get(PAGE)
    assert answer.status_code == 200
    page = Page(answer.text)
    file_input = page.controls["file"]
    assert file_input["type"] == "file"
    assert page.labels[file_input["id"]].startswith("File to score")
    assert page.value("csrf")
    assert "no-jobs" in page.attrs
    assert ui.get("/ui/models/nothing-here/batch").status_code == 404


def test_an_uploaded_csv_is_scored_as_the_api_scores_it(ui, heart):
    body = heart.to_csv(index=False).encode()
    job_id = job_id_of(upload(ui, "patients.csv", body))
    state = wait_on_page(ui, job_id)
    assert state["status"] == "succeeded", state
    assert state["rows"] == 299
    assert state["errors_url"] is None

    page = Page(ui.get(f"/ui/jobs/{job_id}").text)
    assert page.texts["job-status"] == "succeeded"
    assert page.attrs["job-progress"]["value"] == "1.0"
    assert page.texts["job-rows"] == "299"
    link = page.attrs["download-result"]["href"]
    assert link == f"/ui/jobs/{job_id}/result"
    assert "download-errors" not in page.attrs
    # The API sees the same job, and serves the same bytes.
    api = ui.get(f"/v1/jobs/{job_id}").json()
    assert api["model"] == MODEL
    assert api["result"]["rows"] == 299
    downloaded = ui.get(link)
    assert downloaded.status_code == 200
    assert downloaded.headers["content-type"].startswith("text/csv")
    assert downloaded.content == ui.get(f"/v1/jobs/{job_id}/result").content
    scored = pd.read_csv(io.BytesIO(downloaded.content))
    assert len(scored) == 299
    assert {"probability", "label"} <= set(scored.columns)
    # The batch page lists it.
    listed = Page(ui.get(PAGE).text)
    assert "recent-jobs" in listed.attrs
    assert job_id in listed.texts["recent-jobs"]


def test_a_parquet_upload_with_bad_rows_offers_the_failed_rows(ui, heart):
    data = parquet_with_two_bad_rows(heart)
    job_id = job_id_of(upload(ui, "p.parquet", data, "application/octet-stream"))
    state = wait_on_page(ui, job_id)
    assert state["status"] == "succeeded", state
    assert state["invalid_rows"] == 2
    page = Page(ui.get(f"/ui/jobs/{job_id}").text)
    assert page.texts["job-invalid"] == "2"
    assert "row 4.age" in page.texts["job-problems"]
    errors = ui.get(page.attrs["download-errors"]["href"])
    assert errors.status_code == 200
    assert errors.content == ui.get(f"/v1/jobs/{job_id}/errors").content
    assert pd.read_csv(io.BytesIO(errors.content))["row"].tolist() == [4, 8]
    result = ui.get(page.attrs["download-result"]["href"])
    assert result.content == ui.get(f"/v1/jobs/{job_id}/result").content
    assert len(pd.read_parquet(io.BytesIO(result.content))) == 299


@pytest.mark.parametrize(
    ("name", "content", "status", "message"),
    [
        ("notes.bin", b"a,b\n1,2\n", 415, "cannot tell the format of &#39;notes.bin&#39;"),
        ("patients.csv", b"age,sex\n60,1\n", 422, "age"),
        ("empty.csv", b"", 422, ""),
        ("", b"", 422, "choose a file to score"),
    ],
)
def test_a_bad_file_is_refused_on_the_page_with_its_reason(ui, name, content, status, message):
    answer = upload(ui, name, content, "application/octet-stream")
    assert answer.status_code == status, answer.text
    page = Page(answer.text)
    assert "upload-error" in page.attrs
    assert message in answer.text
    assert page.controls["file"]["aria-invalid"] == "true"
    assert ui.get("/v1/jobs").json() == []


def test_an_upload_without_the_csrf_token_is_refused(ui, heart):
    body = heart.head(5).to_csv(index=False).encode()
    files = {"file": ("p.csv", body, "text/csv")}
    missing = ui.post(PAGE, files=files, data={"x": "1"}, follow_redirects=False)
    assert missing.status_code == 403
    assert "text/html" in missing.headers["content-type"]
    forged = ui.post(PAGE, files=files, data={"csrf": "forged"}, follow_redirects=False)
    assert forged.status_code == 403
    assert ui.get("/v1/jobs").json() == []
    assert ui.post(PAGE, data={"csrf": "x"}).status_code == 415  # not a form with a file


def test_an_unknown_job_is_404(ui):
    answer = ui.get("/ui/jobs/no-such-job")
    assert answer.status_code == 404
    assert "text/html" in answer.headers["content-type"]
    assert ui.get("/ui/jobs/no-such-job/result").status_code == 404


# Keys ------------------------------------------------------------------------------------


@pytest.fixture
def keyed(home: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    store = KeyStore(create_database_engine(Settings(home=home).metadata_url))
    tokens = {name: store.create(name, scope)[1] for name, scope in _KEYS.items()}
    store.engine.dispose()
    app = create_app(Settings(home=home, job_workers=1))
    app.state.policy.refresh_seconds = 0
    with TestClient(app) as client:
        yield client, tokens


_KEYS = {"alice": "predict", "bob": "predict", "reader": "read", "admin": "admin"}


def test_a_user_sees_only_their_own_jobs_unless_admin(keyed, heart):
    client, tokens = keyed
    log_in(client, tokens["alice"])
    job_id = job_id_of(upload(client, "p.csv", heart.head(20).to_csv(index=False).encode()))
    assert wait_on_page(client, job_id)["status"] == "succeeded"

    client.cookies.clear()
    log_in(client, tokens["bob"])
    for path in ("", "/status", "/result"):
        assert client.get(f"/ui/jobs/{job_id}{path}").status_code == 404
    assert job_id not in client.get(PAGE).text

    client.cookies.clear()
    log_in(client, tokens["admin"])
    assert client.get(f"/ui/jobs/{job_id}").status_code == 200
    downloaded = client.get(f"/ui/jobs/{job_id}/result")
    assert downloaded.status_code == 200
    api_result = client.get(f"/v1/jobs/{job_id}/result", headers={"X-API-Key": tokens["admin"]})
    assert downloaded.content == api_result.content

    client.cookies.clear()
    log_in(client, tokens["reader"])
    assert client.get(PAGE).status_code == 403
    assert client.get(f"/ui/jobs/{job_id}").status_code == 403


def test_an_unfinished_job_refreshes_itself_and_has_nothing_to_download(home, heart):
    with TestClient(create_app(Settings(home=home, job_workers=0))) as idle:
        job_id = job_id_of(upload(idle, "p.csv", heart.head(10).to_csv(index=False).encode()))
        answer = idle.get(f"/ui/jobs/{job_id}")
        assert answer.status_code == 200
        page = Page(answer.text)
        assert page.texts["job-status"] == "queued"
        assert page.attrs["job-progress"]["value"] == "0.0"
        assert page.attrs["job-refresh"]["href"] == f"/ui/jobs/{job_id}"
        assert page.attrs["job"]["data-finished"] == "false"
        assert '<noscript><meta http-equiv="refresh" content="2"></noscript>' in answer.text
        assert "/ui/static/batch.js?v=" in answer.text
        assert "download-result" not in page.attrs
        state = idle.get(page.attrs["job"]["data-status-url"]).json()
        assert state["status"] == "queued"
        assert state["is_finished"] is False
        assert state["result_url"] is None
        refused = idle.get(f"/ui/jobs/{job_id}/result")
        assert refused.status_code == 409
        assert "its result is ready when it has succeeded" in refused.text


def test_the_upload_is_bounded_by_the_upload_limit_not_the_json_body_limit(home, heart):
    body = heart.to_csv(index=False).encode()  # about 12 kB
    settings = Settings(
        home=home,
        job_workers=0,
        security={"max_body_bytes": 3_000},
        queue={"max_upload_bytes": len(body) + 2_000},
    )
    with TestClient(create_app(settings)) as small:
        job_id_of(upload(small, "p.csv", body))
        too_large = upload(small, "p.csv", body + body)
        assert too_large.status_code == 413
        assert len(small.get("/v1/jobs").json()) == 1
