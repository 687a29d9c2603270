"""Predict requests answered ahead of FastAPI: concurrency, errors, parity, streamed batches."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient

from conftest import SEED_REQUEST
from tabops.config import Settings
from tabops.model.predictor import Predictor
from tabops.server.app import TabopsAPI, create_app
from tabops.server.codecs.v1 import STREAM_ROWS

MODEL = "heart-failure"
PREDICT = f"/v1/models/{MODEL}/predict"
BATCH = f"/v1/models/{MODEL}/predict/batch"
JSON = {"content-type": "application/json"}
RECORD: dict[str, Any] = json.loads(SEED_REQUEST)["features"]
# One version parameter: FastPredict answers. Any other query string: the FastAPI routes do,
# and they ignore the parameter they do not know.
FAST = "?version=1"
ROUTED = "?version=1&via=routes"
SAME = 1e-12  # onnxruntime may sum a batch's rows in another order than a single row's


def scope_of(path: str, query: str) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "POST",
        "path": path,
        "query_string": query.lstrip("?").encode(),
    }


def is_answered_fast(app: TabopsAPI, path: str, query: str) -> bool:
    assert app.fast is not None
    return app.fast.match(scope_of(path, query)) is not None


def serve(
    home: Path,
    scenario: Callable[[TabopsAPI, httpx2.AsyncClient], Awaitable[Any]],
    **settings: Any,
) -> Any:
    """Run ``scenario`` on one event loop against the app, its lifespan (model warm-up) run."""

    async def main() -> Any:
        app = create_app(Settings(home=home, alias_cache_seconds=3600, **settings))
        async with app.router.lifespan_context(app):
            transport = httpx2.ASGITransport(app=app)
            async with httpx2.AsyncClient(transport=transport, base_url="http://tabops") as client:
                return await scenario(app, client)

    return asyncio.run(main())


def varied_records(examples: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """``count`` distinct valid records: the examples, ages shifted by a quarter year each."""
    return [
        examples[i % len(examples)] | {"age": examples[i % len(examples)]["age"] + i / 4}
        for i in range(count)
    ]


async def fetch_examples(client: httpx2.AsyncClient, count: int) -> list[dict[str, Any]]:
    answers = [
        await client.get(f"/v1/models/{MODEL}/example", params={"index": i}) for i in range(count)
    ]
    return [answer.json()["record"] for answer in answers]


def error_fields(response: Any, status: int) -> list[str]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    return [detail["field"] for detail in error["details"]]


@pytest.fixture
def predictor(registry) -> Predictor:
    """The version the app serves, loaded on its own, to say what each answer must be."""
    return Predictor.load(registry, MODEL, 1)


# --- concurrent single-record requests ----------------------------------------------------


def test_concurrent_requests_each_get_their_own_records_probability(home, predictor):
    async def scenario(app, client):
        records = varied_records(await fetch_examples(client, 50), 64)
        answers = await asyncio.gather(*(client.post(PREDICT, json=r) for r in records))
        batcher = app.state.core.batchers.get(app.state.deployment.get(MODEL))
        return records, answers, batcher, is_answered_fast(app, PREDICT, "")

    records, answers, batcher, fast = serve(home, scenario)

    assert fast
    assert [answer.status_code for answer in answers] == [200] * len(records)
    for record, answer in zip(records, answers, strict=True):
        expected = predictor.predict_record(record)
        assert answer.json()["probability"] == pytest.approx(expected.probability, abs=SAME)
        assert answer.json()["label"] == expected.label
    assert batcher.rows_batched > batcher.batches  # concurrent rows shared scoring calls
    assert len({answer.json()["prediction_id"] for answer in answers}) == len(records)


def test_a_bad_request_among_concurrent_ones_gets_422_and_the_others_200(home, predictor):
    async def scenario(app, client):
        records = varied_records(await fetch_examples(client, 32), 32)
        records[17] = records[17] | {"serum_sodium": "high"}
        answers = await asyncio.gather(*(client.post(PREDICT, json=r) for r in records))
        return records, answers

    records, answers = serve(home, scenario)

    assert error_fields(answers[17], 422) == ["serum_sodium"]
    for index, (record, answer) in enumerate(zip(records, answers, strict=True)):
        if index != 17:
            assert answer.status_code == 200, answer.text
            expected = predictor.predict_record(record).probability
            assert answer.json()["probability"] == pytest.approx(expected, abs=SAME)


def test_concurrent_requests_are_answered_correctly_with_micro_batching_off(home, predictor):
    async def scenario(app, client):
        records = varied_records(await fetch_examples(client, 20), 40)
        answers = await asyncio.gather(*(client.post(PREDICT, json=r) for r in records))
        return records, answers, app.state.core.batchers.get(app.state.deployment.get(MODEL))

    records, answers, batcher = serve(home, scenario, micro_batch_rows=1)

    assert batcher is None
    for record, answer in zip(records, answers, strict=True):
        assert answer.status_code == 200, answer.text
        expected = predictor.predict_record(record).probability
        assert answer.json()["probability"] == pytest.approx(expected, abs=SAME)


# --- the fast path and the FastAPI routes answer alike -------------------------------------


@pytest.fixture(scope="module")
def shared_client(
    trained_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    """One app for the tests below, over a copy of the trained home (predictions are logged
    there, and the session's home must stay as training left it for other tests).

    Server errors come back as 500 answers, as a client would see them, not as exceptions.
    """
    home = shutil.copytree(trained_home, tmp_path_factory.mktemp("shared") / "home")
    settings = Settings(home=home, alias_cache_seconds=3600, max_batch_rows=3_000)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def without_ids(body: dict[str, Any]) -> dict[str, Any]:
    """An answer without what differs between two identical requests."""
    plain = {k: v for k, v in body.items() if k not in {"prediction_id", "timestamp"}}
    if "predictions" in plain:
        plain["predictions"] = [
            {k: v for k, v in item.items() if k != "prediction_id"} for item in plain["predictions"]
        ]
    return plain


def record_text(**raw: str) -> bytes:
    values = {name: json.dumps(value) for name, value in RECORD.items()} | raw
    return ("{" + ", ".join(f'"{k}": {v}' for k, v in values.items()) + "}").encode()


def without(*names: str) -> dict[str, Any]:
    return {k: v for k, v in RECORD.items() if k not in names}


SINGLE_BODIES = [
    pytest.param(json.dumps(RECORD).encode(), id="flat-record"),
    pytest.param(SEED_REQUEST.encode(), id="features-wrapper"),
    pytest.param(record_text(time="3.0"), id="whole-float-for-integer"),
    pytest.param(json.dumps(RECORD | {"anaemia": True}).encode(), id="true-for-flag"),
    pytest.param(json.dumps(RECORD | {"age": 20.75}).encode(), id="fractional-age"),
    pytest.param(json.dumps(without("age")).encode(), id="missing-field"),
    pytest.param(json.dumps(RECORD | {"age": "20"}).encode(), id="text-for-number"),
    pytest.param(json.dumps(RECORD | {"age": None}).encode(), id="null-for-number"),
    pytest.param(json.dumps(RECORD | {"smoking": 2}).encode(), id="two-for-flag"),
    pytest.param(json.dumps(RECORD | {"time": 3.5}).encode(), id="fraction-for-integer"),
    pytest.param(json.dumps(RECORD | {"cholesterol": 180}).encode(), id="unknown-field"),
    pytest.param(record_text(age="NaN"), id="nan"),
    pytest.param(record_text(age="1e999"), id="overflowing-number"),
    pytest.param(json.dumps({"features": without("time")}).encode(), id="wrapped-missing"),
    pytest.param(json.dumps([RECORD]).encode(), id="list-instead-of-object"),
    pytest.param(b"{}", id="empty-object"),
    pytest.param(b"", id="empty-body"),
    pytest.param(b'{"age": 20,', id="malformed-json"),
    pytest.param(b"\xff", id="not-utf8"),
]


@pytest.mark.parametrize("body", SINGLE_BODIES)
def test_fast_path_and_routes_answer_a_single_record_identically(shared_client, body):
    assert is_answered_fast(shared_client.app, PREDICT, FAST)
    assert not is_answered_fast(shared_client.app, PREDICT, ROUTED)

    fast = shared_client.post(PREDICT + FAST, content=body, headers=JSON)
    routed = shared_client.post(PREDICT + ROUTED, content=body, headers=JSON)

    assert fast.status_code == routed.status_code
    assert fast.status_code in (200, 400, 422), fast.text
    assert fast.headers["content-type"] == routed.headers["content-type"] == "application/json"
    assert without_ids(fast.json()) == without_ids(routed.json())


def batch_of(*records: dict[str, Any]) -> bytes:
    return json.dumps({"records": list(records)}).encode()


BATCH_BODIES = [
    pytest.param(batch_of(RECORD, RECORD | {"age": 61.5}), id="two-records"),
    pytest.param(batch_of(RECORD | {"anaemia": False}), id="false-for-flag"),
    pytest.param(b'{"records": [' + record_text(time="3.0") + b"]}", id="whole-float-for-integer"),
    pytest.param(batch_of(RECORD, without("age")), id="missing-field"),
    pytest.param(batch_of(RECORD, RECORD | {"smoking": 2}, without("time")), id="two-bad"),
    pytest.param(b'{"records": [' + record_text(age="NaN") + b"]}", id="nan"),
    pytest.param(json.dumps({"records": [RECORD, 5]}).encode(), id="record-not-an-object"),
    pytest.param(json.dumps({"records": RECORD}).encode(), id="records-not-a-list"),
    pytest.param(batch_of(), id="empty-batch"),
    pytest.param(batch_of(*[RECORD] * 3_001), id="over-the-row-limit"),
    pytest.param(json.dumps({"records": [RECORD], "limit": 3}).encode(), id="unknown-top-field"),
    pytest.param(b"", id="empty-body"),
    pytest.param(b'{"records": [', id="malformed-json"),
]


@pytest.mark.parametrize("body", BATCH_BODIES)
def test_fast_path_and_routes_answer_a_batch_identically(shared_client, body):
    assert is_answered_fast(shared_client.app, BATCH, FAST)
    assert not is_answered_fast(shared_client.app, BATCH, ROUTED)

    fast = shared_client.post(BATCH + FAST, content=body, headers=JSON)
    routed = shared_client.post(BATCH + ROUTED, content=body, headers=JSON)

    assert fast.status_code == routed.status_code
    assert fast.status_code in (200, 400, 413, 422), fast.text
    assert without_ids(fast.json()) == without_ids(routed.json())


@pytest.mark.parametrize("query", [FAST, ROUTED])
def test_empty_batch_is_422_and_oversized_batch_is_413_on_both_paths(home, query):
    with TestClient(create_app(Settings(home=home, max_batch_rows=3))) as client:
        empty = client.post(BATCH + query, content=batch_of(), headers=JSON)
        full = client.post(BATCH + query, content=batch_of(*[RECORD] * 3), headers=JSON)
        over = client.post(BATCH + query, content=batch_of(*[RECORD] * 4), headers=JSON)

    assert error_fields(empty, 422) == ["records"]
    assert full.status_code == 200, full.text
    assert len(full.json()["predictions"]) == 3
    assert error_fields(over, 413) == ["records"]


# --- large batches are streamed ------------------------------------------------------------


@pytest.mark.parametrize("query", [FAST, ROUTED])
def test_a_batch_above_the_streaming_size_answers_every_record_in_order(
    shared_client, predictor, query
):
    examples = [predictor.example(index) for index in range(len(predictor.examples))]
    records = [
        record | {"time": record["time"] + i // len(examples)}
        for i, record in enumerate(examples * 50)
    ]
    assert len(records) == 2_500 > STREAM_ROWS

    response = shared_client.post(BATCH + query, content=batch_of(*records), headers=JSON)

    assert response.status_code == 200, response.text[:500]
    assert "content-length" not in response.headers  # sent in chunks
    body = json.loads(response.content)
    assert body["model"] == MODEL
    assert body["version"] == 1
    predictions = body["predictions"]
    assert len(predictions) == len(records)
    expected = [p.probability for p in predictor.predict_records(records)]
    assert [p["probability"] for p in predictions] == pytest.approx(expected, abs=SAME)
    singles = [predictor.predict_record(records[i]).probability for i in range(0, 2_500, 97)]
    assert [predictions[i]["probability"] for i in range(0, 2_500, 97)] == pytest.approx(
        singles, abs=SAME
    )
    for item in predictions:
        assert item["label"] == (1 if item["probability"] >= body["threshold"] else 0)
    assert len({item["prediction_id"] for item in predictions}) == len(records)


# --- bodies that break decoding are the client's error, not the server's ---------------------


@pytest.mark.parametrize("query", [FAST, ROUTED])
@pytest.mark.parametrize(
    ("path", "body", "status", "fields"),
    [
        pytest.param(
            PREDICT,
            json.dumps(RECORD)[:-1].encode() + b', "caf\xe9": 1}',
            400,
            ["body"],
            id="invalid-utf8-in-a-string",
        ),
        pytest.param(
            BATCH,
            b'{"records": [' + json.dumps(RECORD)[:-1].encode() + b', "caf\xe9": 1}]}',
            400,
            ["body"],
            id="invalid-utf8-in-a-string-of-a-batch",
        ),
        pytest.param(
            PREDICT,
            record_text(time="1" + "0" * 400),
            422,
            ["time"],
            id="integer-too-large-for-a-float",
        ),
        pytest.param(
            BATCH,
            b'{"records": [' + record_text(time="1" + "0" * 400) + b"]}",
            422,
            ["records[0].time"],
            id="integer-too-large-for-a-float-in-a-batch",
        ),
    ],
)
def test_predict_answers_4xx_for_a_body_that_cannot_be_decoded_or_encoded(
    shared_client, query, path, body, status, fields
):
    response = shared_client.post(path + query, content=body, headers=JSON)

    assert error_fields(response, status) == fields
