"""/metrics, X-Request-ID on every answer, and JSON access lines, through the real app."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from conftest import SEED_REQUEST
from tabops.config import Settings
from tabops.database import create_database_engine
from tabops.logs import ACCESS_LOGGER, JsonFormatter, LogOptions
from tabops.security.keys import KeyStore
from tabops.server.app import create_app
from tabops.serving.hooks import Hooks, ServedPredictions

MODEL = "heart-failure"
PREDICT = f"/v1/models/{MODEL}/predict"
BATCH = f"/v1/models/{MODEL}/predict/batch"
PREDICT_ROUTE = "/v1/models/{name}/predict"
BATCH_ROUTE = "/v1/models/{name}/predict/batch"
RECORD: dict[str, Any] = json.loads(SEED_REQUEST)["features"]
ROUTED = "?version=1&via=routes"  # a query string the fast path leaves to the FastAPI routes
FRESH_ID = re.compile(r"^[0-9a-f]{24}$")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: TestClient, headers: dict[str, str] | None = None) -> Samples:
    answer = client.get("/metrics", headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def added(before: Samples, after: Samples, name: str, **labels: str) -> float:
    """How much the samples named ``name`` whose labels include ``labels`` grew."""
    wanted = set(labels.items())

    def total(samples: Samples) -> float:
        return sum(v for (n, found), v in samples.items() if n == name and wanted <= found)

    return total(after) - total(before)


@pytest.fixture
def client(home: Path) -> Iterator[TestClient]:
    settings = Settings(home=home, security={"max_body_bytes": 4_096})
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_metrics_count_answers_by_route_model_version_status_and_class(client):
    before = scrape(client)
    answers = [client.post(PREDICT, json=RECORD) for _ in range(2)]
    answers.append(client.post(PREDICT + ROUTED, json=RECORD))
    batch = client.post(BATCH, json={"records": [RECORD, RECORD | {"age": 90}, RECORD]})
    invalid = client.post(PREDICT, json=RECORD | {"colour": "red"})
    unknown = client.get("/no/such/path")
    listed = client.get("/v1/models")
    after = scrape(client)

    assert [a.status_code for a in answers] == [200, 200, 200]
    assert (batch.status_code, invalid.status_code) == (200, 422)
    assert (unknown.status_code, listed.status_code) == (404, 200)
    requests = "tabops_requests_total"
    ok = {"model": MODEL, "version": "1", "status": "200"}
    # The fast path and the FastAPI route count under the one route template.
    assert added(before, after, requests, route=PREDICT_ROUTE, **ok) == 3
    assert added(before, after, requests, route=BATCH_ROUTE, **ok) == 1
    assert added(before, after, requests, route=PREDICT_ROUTE, status="422", model=MODEL) == 1
    assert added(before, after, requests, route="unmatched", status="404", model="") == 1
    assert added(before, after, requests, route="/v1/models", status="200") == 1
    seconds = "tabops_request_duration_seconds_count"
    assert added(before, after, seconds, route=PREDICT_ROUTE) == 4
    decided = [a.json()["class_name"] for a in answers]
    decided += [row["class_name"] for row in batch.json()["predictions"]]
    for class_name in set(decided):
        found = added(
            before,
            after,
            "tabops_predictions_total",
            model=MODEL,
            version="1",
            **{"class": class_name},
        )
        assert found == decided.count(class_name)
    assert added(before, after, "tabops_predictions_total", model=MODEL) == 6
    assert after[("tabops_job_queue_depth", frozenset())] == 0


def test_queued_jobs_are_read_from_the_job_store_when_scraped(home):
    # No job threads: what is submitted stays queued.
    settings = Settings(home=home, queue={"job_workers": 0})
    with TestClient(create_app(settings)) as client:
        for _ in range(2):
            answer = client.post(f"/v1/models/{MODEL}/jobs", json={"records": [RECORD]})
            assert answer.status_code == 202, answer.text
        assert scrape(client)[("tabops_job_queue_depth", frozenset())] == 2


def test_metrics_need_a_read_key_once_keys_exist(home, client):
    keys = KeyStore(create_database_engine(Settings(home=home).metadata_url))
    _key, token = keys.create("scraper", "read")
    client.app.state.policy.refresh_seconds = 0  # the key counts at once

    refused = client.get("/metrics")
    assert refused.status_code == 401
    assert FRESH_ID.match(refused.headers["x-request-id"])
    samples = scrape(client, {"Authorization": f"Bearer {token}"})
    assert ("tabops_job_queue_depth", frozenset()) in samples


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", PREDICT, RECORD, 200),  # fast path
        ("POST", PREDICT, RECORD | {"colour": "red"}, 422),  # fast path error
        ("POST", PREDICT, {"padding": "x" * 5_000}, 413),  # fast path, refused unread
        ("POST", PREDICT + ROUTED, RECORD, 200),  # FastAPI route
        ("POST", PREDICT + ROUTED, {"features": 3}, 422),  # FastAPI route error
        ("POST", "/v1/keys", {"name": "x" * 5_000}, 413),  # refused by the limits
        ("GET", "/v1/models", None, 200),
        ("GET", "/no/such/path", None, 404),
        ("GET", "/v1/models/no-such-model", None, 404),
    ],
)
def test_every_answer_carries_a_request_id(client, method, path, body, status):
    fresh = client.request(method, path, json=body)
    given = client.request(method, path, json=body, headers={"X-Request-ID": "trace-42.a:b"})
    unsafe = client.request(method, path, json=body, headers={"X-Request-ID": "no spaces" * 9})

    assert [fresh.status_code, given.status_code, unsafe.status_code] == [status] * 3
    assert FRESH_ID.match(fresh.headers["x-request-id"])
    assert given.headers.get_list("x-request-id") == ["trace-42.a:b"]
    assert FRESH_ID.match(unsafe.headers["x-request-id"])
    assert fresh.headers["x-request-id"] != unsafe.headers["x-request-id"]


class FailingSink:
    """A prediction sink whose store is gone: every record fails."""

    def record(self, served: ServedPredictions) -> None:
        raise OSError(f"no space left for {len(served.decisions)} decisions")


@pytest.fixture
def json_lines(home: Path) -> Iterator[tuple[TestClient, io.StringIO]]:
    """An app with JSON access lines on, and every tabops log line captured as JSON."""
    captured = io.StringIO()
    handler = logging.StreamHandler(captured)
    handler.setFormatter(JsonFormatter())
    tabops_logger = logging.getLogger("tabops")
    tabops_logger.addHandler(handler)
    level = tabops_logger.level
    tabops_logger.setLevel(logging.INFO)
    app = create_app(
        Settings(home=home),
        hooks=Hooks(sink=FailingSink()),
        log_options=LogOptions("json", is_access_logged=True),
    )
    try:
        with TestClient(app) as client:
            yield client, captured
    finally:
        tabops_logger.removeHandler(handler)
        tabops_logger.setLevel(level)


def test_json_access_lines_and_errors_carry_the_request_id(json_lines):
    client, captured = json_lines
    ids = {"X-Request-ID": "req-1"}
    assert client.post(PREDICT, json=RECORD, headers=ids).status_code == 200
    assert client.get("/v1/models", headers={"X-Request-ID": "req-2"}).status_code == 200
    assert client.get("/nowhere").status_code == 404

    lines = [json.loads(line) for line in captured.getvalue().splitlines()]
    access = [line for line in lines if line["logger"] == ACCESS_LOGGER]
    routes = [(line["method"], line["route"], line["status"]) for line in access]
    assert routes == [
        ("POST", PREDICT_ROUTE, 200),
        ("GET", "/v1/models", 200),
        ("GET", "unmatched", 404),
    ]
    assert [line["request_id"] for line in access[:2]] == ["req-1", "req-2"]
    assert FRESH_ID.match(access[2]["request_id"])
    assert all(line["duration_ms"] >= 0 and line["level"] == "INFO" for line in access)
    # The sink's failure, logged deep inside the serving core, names the request it served.
    failure = next(line for line in lines if "sink failed" in line["message"])
    assert failure["request_id"] == "req-1"
    assert "OSError: no space left for 1 decisions" in failure["exception"]
    assert failure["level"] == "ERROR"


def test_access_lines_are_off_unless_asked_for(home):
    captured = io.StringIO()
    handler = logging.StreamHandler(captured)
    access_logger = logging.getLogger(ACCESS_LOGGER)
    access_logger.addHandler(handler)
    try:
        text = LogOptions("text", is_access_logged=True)  # uvicorn's own lines, not ours
        with TestClient(create_app(Settings(home=home), log_options=text)) as client:
            assert client.post(PREDICT, json=RECORD).status_code == 200
            assert client.get("/v1/models").status_code == 200
    finally:
        access_logger.removeHandler(handler)
    assert captured.getvalue() == ""
