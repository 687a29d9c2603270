"""Request limits over HTTP: body size, JSON depth, uploads spooled under home, timeouts.

In-process tests go through TestClient; what only a real connection shows (an answer before
the body has all been sent, the server's own temp folder, a route stuck on a thread) goes
through a live ``tabops serve`` on 127.0.0.1.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx2
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from conftest import HEART_CSV, SEED_REQUEST, wait_for
from tabops.config import Settings
from tabops.server.app import create_app
from tabops.server.limits import json_depth

MODEL = "heart-failure"
PREDICT = f"/v1/models/{MODEL}/predict"
BATCH = f"/v1/models/{MODEL}/predict/batch"
JOBS = f"/v1/models/{MODEL}/jobs"
ROUTED = "?version=1&via=routes"  # a query string the fast path leaves to the FastAPI routes
RECORD: dict[str, Any] = json.loads(SEED_REQUEST)["features"]
JSON = {"content-type": "application/json"}
CSV = {"content-type": "text/csv"}


def nested(levels: int) -> bytes:
    """A JSON object whose objects nest ``levels`` deep."""
    return b'{"a":' * (levels - 1) + b'{"a":1' + b"}" * levels


def heart_csv() -> bytes:
    return pd.read_csv(HEART_CSV).drop(columns=["DEATH_EVENT"]).to_csv(index=False).encode()


def error_of(response: Any) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    return error


def test_json_depth_counts_arrays_and_objects_outside_strings():
    assert json_depth(b"") == 0
    assert json_depth(b"1") == 0
    assert json_depth(b'{"records": [{"a": 1}, {"a": [2]}]}') == 4
    assert json_depth(nested(40)) == 40
    assert json_depth(b"[" * 5000 + b"]" * 5000) == 5000
    # Brackets inside strings, escaped quotes and backslashes do not count.
    assert json_depth(b'{"a": "[[[{{{", "b": "]]]}}}"}') == 1
    assert json_depth(b'["\\"[[[", "\\\\", ["x"]]') == 2
    assert json_depth(b'["]"' + b", [" * 3 + b"]" * 3 + b"]") == 4


@pytest.mark.parametrize(
    "path",
    [
        "/predict",
        "/predict?via=routes",
        PREDICT,
        PREDICT + ROUTED,
        BATCH,
        BATCH + ROUTED,
        JOBS,
        "/v1/train",
        f"/v1/models/{MODEL}/entities/7/prediction",
    ],
)
@pytest.mark.parametrize("levels", [33, 100_000])
def test_a_body_nested_past_the_limit_is_refused_naming_body(client, path, levels):
    response = client.post(path, content=nested(levels), headers=JSON)

    assert response.status_code == 422, response.text
    error = error_of(response)
    assert error["code"] == "invalid_request"
    assert "32 levels" in error["message"]
    assert error["details"] == [
        {"field": "body", "problem": "at most 32 levels of nested arrays and objects"}
    ]


@pytest.mark.parametrize("path", [PREDICT, PREDICT + ROUTED])
def test_the_depth_limit_is_the_setting(home, path):
    with TestClient(create_app(Settings(home=home, max_json_depth=3))) as client:
        wrapped = client.post(path, json={"features": RECORD})
        as_deep = client.post(path, json={**RECORD, "age": [[20]]})
        deeper = client.post(path, json={**RECORD, "age": [[[20]]]})

    assert wrapped.status_code == 200, wrapped.text
    assert as_deep.status_code == 422
    assert error_of(as_deep)["details"][0]["field"] == "age"
    assert deeper.status_code == 422
    assert error_of(deeper)["details"] == [
        {"field": "body", "problem": "at most 3 levels of nested arrays and objects"}
    ]


@pytest.fixture
def small_client(home: Path) -> Iterator[TestClient]:
    """An app taking JSON bodies of 1,000 bytes and uploads of 10,000 at most."""
    settings = Settings(home=home, max_body_bytes=1_000, max_upload_bytes=10_000)
    with TestClient(create_app(settings)) as client:
        yield client


def padded_record(size: int) -> bytes:
    """The seed record with an unknown field padding it to ``size`` bytes."""
    body = json.dumps({**RECORD, "padding": ""}).encode()
    return body[:-2] + b"x" * (size - len(body)) + body[-2:]


@pytest.mark.parametrize("path", [PREDICT, PREDICT + ROUTED, "/v1/train", JOBS])
# Without a Content-Length the body is counted as it is read (TestClient hands it over whole:
# the live tests below send it in pieces).
@pytest.mark.parametrize("sent", ["content-length", "no-length"])
def test_a_json_body_over_the_limit_is_refused_413(small_client, path, sent):
    body = padded_record(1_001)
    content = body if sent == "content-length" else iter([body[:600], body[600:]])

    response = small_client.post(path, content=content, headers=JSON)

    assert response.status_code == 413, response.text
    error = error_of(response)
    assert error["code"] == "body_too_large"
    assert error["details"] == [{"field": "body", "problem": "at most 1000 bytes"}]
    if sent == "content-length":  # refused before the body was read, so none of it is
        assert response.headers["connection"] == "close"


def test_a_json_body_at_the_limit_is_read(small_client):
    response = small_client.post(PREDICT, content=padded_record(1_000), headers=JSON)

    assert response.status_code == 422  # read and validated: the padding is an unknown field
    assert error_of(response)["details"] == [{"field": "padding", "problem": "unknown field"}]


FORM = "multipart/form-data"
BOUNDARY = "tabopsboundary"
FORM_MEDIA = f"{FORM}; boundary={BOUNDARY}"


def form_of(*files: tuple[str, bytes, str]) -> bytes:
    """A multipart body holding a ``file`` part per (filename, data, media type)."""
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        f"Content-Type: {media}\r\n\r\n".encode()
        + data
        + b"\r\n"
        for name, data, media in files
    ]
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


@pytest.mark.parametrize("kind", ["csv", "form"])
# Without a Content-Length the body is counted as it is read (TestClient hands it over whole:
# the live tests below send it in pieces).
@pytest.mark.parametrize("sent", ["content-length", "no-length"])
def test_an_upload_over_the_limit_is_refused_and_leaves_no_file(small_client, home, kind, sent):
    data = heart_csv()
    assert len(data) > 10_000
    body, media = (
        (data, "text/csv") if kind == "csv" else (form_of(("h.csv", data, "")), FORM_MEDIA)
    )
    pieces = [body[start : start + 4096] for start in range(0, len(body), 4096)]
    content = body if sent == "content-length" else iter(pieces)

    response = small_client.post(JOBS, content=content, headers={"content-type": media})

    assert response.status_code == 413, response.text
    error = error_of(response)
    assert error["code"] == "upload_too_large"
    assert error["details"] == [{"field": "body", "problem": "at most 10000 bytes"}]
    assert list((home / "uploads").glob("*")) == []
    assert list((home / "jobs").glob("*")) == []


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        (form_of(("a.csv", b"x\n1\n", ""), ("b.csv", b"x\n1\n", "")), 422, None, "file"),
        (form_of(("a.csv", b"x\n1\n", ""))[:-20], 400, "malformed_form", "body"),
        (form_of(("notes.txt", b"x\n1\n", "text/plain")), 415, None, "file"),
        (form_of(("empty.csv", b"", "text/csv")), 422, "invalid_data", "file"),
    ],
    ids=["two-files", "no-closing-boundary", "not-a-table", "empty-file"],
)
def test_a_bad_form_is_refused_and_leaves_no_file(small_client, home, body, status, code, field):
    response = small_client.post(JOBS, content=body, headers={"content-type": FORM_MEDIA})

    assert response.status_code == status, response.text
    error = error_of(response)
    assert code is None or error["code"] == code
    assert [detail["field"] for detail in error["details"]] == [field]
    assert list((home / "uploads").glob("*")) == []
    assert list((home / "jobs").glob("*")) == []


def test_the_parts_of_a_form_beside_its_file_are_read_past_unchecked(client, home):
    # A long text field, a part with no name and a file under another name: none is the file.
    others = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="note"\r\n\r\n'.encode()
        + b"n" * 20_000
        + f"\r\n--{BOUNDARY}\r\nContent-Disposition: form-data\r\n\r\nx\r\n"
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="extra"; filename="e.bin"\r\n'
        "\r\n\xff\xfe\r\n".encode("latin-1")
    )
    body = others + form_of(("rows", heart_csv(), "text/csv"))

    response = client.post(JOBS, content=body, headers={"content-type": FORM_MEDIA})

    assert response.status_code == 202, response.text
    job = client.get(response.json()["status_url"]).json()
    assert job["status"] in ("queued", "running", "succeeded")
    assert list((home / "uploads").glob("*")) == []


def test_a_form_part_with_a_header_too_long_to_hold_is_refused(client):
    head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"\r\nX-Note: '.encode()
    body = head + b"a" * 20_000 + f"\r\n\r\nx\n1\n\r\n--{BOUNDARY}--\r\n".encode()

    response = client.post(JOBS, content=body, headers={"content-type": FORM_MEDIA})

    assert response.status_code == 400
    assert error_of(response)["details"] == [
        {"field": "body", "problem": "not multipart/form-data"}
    ]


def test_a_form_without_a_boundary_is_refused(small_client):
    response = small_client.post(JOBS, content=b"x", headers={"content-type": FORM})

    assert response.status_code == 400
    assert error_of(response)["details"][0]["field"] == "body"


def test_uploads_left_by_a_stopped_server_are_removed_at_start_up(home):
    folder = home / "uploads"
    folder.mkdir()
    old, fresh, other = folder / "upload-old.part", folder / "upload-new.part", folder / "notes"
    for path in (old, fresh, other):
        path.write_bytes(b"a,b\n")
    two_hours_ago = time.time() - 7_200
    os.utime(old, (two_hours_ago, two_hours_ago))
    os.utime(other, (two_hours_ago, two_hours_ago))

    with TestClient(create_app(Settings(home=home))):
        assert sorted(path.name for path in folder.iterdir()) == ["notes", "upload-new.part"]


@pytest.mark.parametrize("path", [BATCH, BATCH + ROUTED])
def test_a_batch_slower_than_the_timeout_is_answered_503(home, path):
    records = pd.read_csv(HEART_CSV).drop(columns=["DEATH_EVENT"]).to_dict("records") * 20
    settings = Settings(home=home, request_timeout_seconds=0.001)
    with TestClient(create_app(settings)) as client:
        response = client.post(path, json={"records": records})

    assert response.status_code == 503, response.text
    assert error_of(response)["code"] == "request_timeout"
    assert response.headers["retry-after"] == "5"


# A live server: what TestClient cannot show.

HOST = "127.0.0.1"
LIVE_BODY_BYTES = 4_096
LIVE_UPLOAD_BYTES = 65_536
LIVE_TIMEOUT_SECONDS = 3.0
SAFETY_SECONDS = 30.0  # how long a socket waits before the test fails instead of hanging


class Live:
    def __init__(self, base: str, port: int, home: Path, temp: Path) -> None:
        self.base, self.port, self.home, self.temp = base, port, home, temp

    def connection(self) -> closing[http.client.HTTPConnection]:
        return closing(http.client.HTTPConnection(HOST, self.port, timeout=SAFETY_SECONDS))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def live(trained_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """``tabops serve`` with small limits, its own TMPDIR, over a private copy of the home."""
    root = tmp_path_factory.mktemp("live")
    home, temp = root / "home", root / "tmp"
    shutil.copytree(trained_home, home)
    temp.mkdir()
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("TABOPS_")}
    env.update(
        TABOPS_HOME=str(home),
        TABOPS_SECURITY__MAX_BODY_BYTES=str(LIVE_BODY_BYTES),
        TABOPS_QUEUE__MAX_UPLOAD_BYTES=str(LIVE_UPLOAD_BYTES),
        TABOPS_SECURITY__REQUEST_TIMEOUT_SECONDS=str(LIVE_TIMEOUT_SECONDS),
        TABOPS_DATABASE__BUSY_TIMEOUT_SECONDS="60",
        TMPDIR=str(temp),
    )
    command = [str(Path(sys.executable).parent / "tabops"), "serve", "--host", HOST]
    stderr_path = root / "serve.err"
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [*command, "--port", str(port)], env=env, stdout=stderr, stderr=stderr, cwd=root
        )
        base = f"http://{HOST}:{port}"
        try:
            wait_until_live(base, process, stderr_path)
            yield Live(base, port, home, temp)
        finally:
            process.terminate()
            try:
                process.wait(timeout=SAFETY_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=SAFETY_SECONDS)


def wait_until_live(base: str, process: subprocess.Popen, stderr_path: Path) -> None:
    with httpx2.Client(base_url=base, timeout=SAFETY_SECONDS) as client:
        while process.poll() is None:
            try:
                if client.get("/healthz").status_code == 200:
                    return
            except httpx2.TransportError:
                time.sleep(0.2)
    pytest.fail(f"tabops serve exited with {process.returncode}:\n{stderr_path.read_text()}")


def answer_of(connection: http.client.HTTPConnection) -> tuple[int, dict[str, str], dict]:
    response = connection.getresponse()
    headers = {key.lower(): value for key, value in response.getheaders()}
    return response.status, headers, json.loads(response.read())


def start(connection: http.client.HTTPConnection, path: str, headers: dict[str, str]) -> None:
    connection.putrequest("POST", path)
    for key, value in headers.items():
        connection.putheader(key, value)
    connection.endheaders()


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


# The path, content type, refusal and first bytes of a body that goes on past every limit.
FORM_HEAD = form_of(("x.csv", b"", "text/csv"))[:-22]  # up to the file's first byte
LIVE_CASES = [
    pytest.param(PREDICT, "application/json", "body_too_large", b"", id="fast-path"),
    pytest.param("/v1/train", "application/json", "body_too_large", b"", id="pydantic-route"),
    pytest.param(JOBS, "text/csv", "upload_too_large", b"", id="csv-upload"),
    pytest.param(JOBS, FORM_MEDIA, "upload_too_large", FORM_HEAD, id="form-upload"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("path", "media", "code", "head"), LIVE_CASES)
def test_a_content_length_over_the_limit_is_answered_before_the_body_is_sent(
    live, path, media, code, head
):
    with live.connection() as connection:
        start(connection, path, {"Content-Type": media, "Content-Length": str(10**9)})
        connection.send(head + b" " * 100)  # the first piece of a body never finished

        status, headers, document = answer_of(connection)

    assert status == 413
    assert document["error"]["code"] == code
    assert headers["connection"] == "close"


@pytest.mark.slow
@pytest.mark.parametrize(("path", "media", "code", "head"), LIVE_CASES)
def test_a_chunked_body_over_the_limit_is_answered_as_it_passes_the_limit(
    live, path, media, code, head
):
    limit = LIVE_UPLOAD_BYTES if code == "upload_too_large" else LIVE_BODY_BYTES
    with live.connection() as connection:
        start(connection, path, {"Content-Type": media, "Transfer-Encoding": "chunked"})
        if head:
            connection.send(chunk(head))  # an empty chunk would end the body
        for _ in range(limit // 1024 + 1):
            connection.send(chunk(b" " * 1024))  # no last chunk: the body never ends

        status, headers, document = answer_of(connection)

    assert status == 413
    assert document["error"]["code"] == code
    assert headers["connection"] == "close"


def wait_until_empty(folder: Path) -> list[str]:
    """The names in ``folder`` once it is empty, or after the server had ample time."""
    deadline = time.monotonic() + SAFETY_SECONDS
    while time.monotonic() < deadline and folder.is_dir() and any(folder.iterdir()):
        time.sleep(0.05)
    return sorted(path.name for path in folder.iterdir()) if folder.is_dir() else []


@pytest.mark.slow
def test_uploads_refused_or_abandoned_leave_nothing_behind(live):
    before = set(live.temp.iterdir())
    data = heart_csv() * 8
    assert len(data) > LIVE_UPLOAD_BYTES
    for media, body, status in [
        (FORM_MEDIA, form_of(("heart.csv", data, "text/csv")), 413),
        ("text/csv", data, 413),
        (FORM_MEDIA, form_of(("notes.txt", data[:1000], "text/plain")), 415),
    ]:
        with live.connection() as connection:
            start(connection, JOBS, {"Content-Type": media, "Transfer-Encoding": "chunked"})
            sent = body[: LIVE_UPLOAD_BYTES + 8_192]  # past the limit: the server stops reading
            for begin in range(0, len(sent), 8_192):
                connection.send(chunk(sent[begin : begin + 8_192]))
            if len(sent) == len(body):
                connection.send(b"0\r\n\r\n")
            assert answer_of(connection)[0] == status
    with live.connection() as connection:  # a client that leaves in the middle of its upload
        start(connection, JOBS, {"Content-Type": "text/csv", "Content-Length": str(len(data))})
        connection.send(data[:20_000])

    assert wait_until_empty(live.home / "uploads") == []
    assert set(live.temp.iterdir()) == before


@pytest.mark.slow
def test_a_good_upload_is_scored_end_to_end_without_the_temp_folder(live):
    frame = pd.read_csv(HEART_CSV).drop(columns=["DEATH_EVENT"])
    parquet = io.BytesIO()
    frame.to_parquet(parquet)
    before = set(live.temp.iterdir())
    body = form_of(("heart.csv", heart_csv(), "text/csv"))
    with httpx2.Client(base_url=live.base, timeout=SAFETY_SECONDS) as client:
        submitted = [
            client.post(JOBS, content=body, headers={"content-type": FORM_MEDIA}),
            client.post(
                JOBS,
                content=parquet.getvalue(),
                headers={"content-type": "application/vnd.apache.parquet"},
            ),
        ]
        assert [response.status_code for response in submitted] == [202, 202]
        jobs = [wait_for(client, response.json()["status_url"]) for response in submitted]

    assert [job["status"] for job in jobs] == ["succeeded", "succeeded"]
    assert [job["result"]["rows"] for job in jobs] == [len(frame), len(frame)]
    assert wait_until_empty(live.home / "uploads") == []
    assert set(live.temp.iterdir()) == before


@pytest.mark.slow
def test_the_timeout_counts_from_the_end_of_a_slow_upload(live):
    data = heart_csv()
    pieces = [data[begin : begin + 3_000] for begin in range(0, len(data), 3_000)]
    pause = 1.5 * LIVE_TIMEOUT_SECONDS / len(pieces)  # the upload lasts 1.5 timeouts
    with live.connection() as connection:
        start(connection, JOBS, {"Content-Type": "text/csv", "Transfer-Encoding": "chunked"})
        for piece in pieces:
            connection.send(chunk(piece))
            time.sleep(pause)
        connection.send(b"0\r\n\r\n")

        status, _headers, document = answer_of(connection)

    assert status == 202, document


@pytest.mark.slow
def test_a_route_stuck_on_a_locked_database_is_answered_503_while_it_waits(live):
    """The job's record cannot be written while the test holds the database's write lock:
    the answer must come from the timeout, before the lock is released."""
    lock = sqlite3.connect(live.home / "tabops.db", isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")
    try:
        with live.connection() as connection:
            body = json.dumps({"records": [RECORD]}).encode()
            start(connection, JOBS, {**JSON, "Content-Length": str(len(body))})
            connection.send(body)

            status, headers, document = answer_of(connection)
    finally:
        lock.execute("ROLLBACK")
        lock.close()

    assert status == 503, document
    assert document["error"]["code"] == "request_timeout"
    assert headers["retry-after"] == "5"
