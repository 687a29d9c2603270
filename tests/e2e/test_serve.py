"""``tabops serve`` as a real process, answering real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from conftest import SEED_REQUEST

pytestmark = pytest.mark.slow

HOST = "127.0.0.1"
STARTUP_SECONDS = 30.0
TABOPS = Path(sys.executable).parent / "tabops"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def request(url: str, body: str | None = None) -> tuple[int, dict]:
    """(status, JSON body) of a GET, or of a POST when ``body`` is given."""
    data = body.encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if body is not None else {}
    call = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(call, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def wait_until_live(base: str, process: subprocess.Popen, stderr_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"tabops serve exited with {process.returncode}:\n{stderr_path.read_text()}"
            )
        try:
            if request(f"{base}/healthz")[0] == 200:
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    pytest.fail(f"tabops serve not live after {STARTUP_SECONDS:g} s:\n{stderr_path.read_text()}")


@pytest.fixture
def server(home, tmp_path):
    """Base URL of a ``tabops serve`` process over the trained ``home``; stopped afterwards."""
    yield from serve(home, tmp_path)


def serve(home: Path, tmp_path: Path, *options: str):
    """Start ``tabops serve`` with extra options, yield its base URL and process, stop it."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("TABOPS_")}
    env["TABOPS_HOME"] = str(home)
    stdout_path = tmp_path / "serve.out"
    stderr_path = tmp_path / "serve.err"
    command = [str(TABOPS), "serve", "--host", HOST, "--port", str(port), *options]
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        process = subprocess.Popen(command, env=env, stdout=stdout, stderr=stderr, cwd=tmp_path)
        try:
            base = f"http://{HOST}:{port}"
            wait_until_live(base, process, stderr_path)
            yield (base, process) if options else base
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def test_serve_predicts_seed_request_sent_verbatim(server):
    status, body = request(f"{server}/predict", SEED_REQUEST)

    assert status == 200, body
    assert body["class_name"] in {"survived", "dead"}
    assert 0.0 <= body["probability"] <= 1.0
    assert body["model"] == "heart-failure"


def test_serve_returns_422_naming_age_when_seed_record_lacks_age(server):
    document = json.loads(SEED_REQUEST)
    del document["features"]["age"]

    status, body = request(f"{server}/predict", json.dumps(document))

    assert status == 422, body
    assert [detail["field"] for detail in body["error"]["details"]] == ["age"]


def test_serve_with_two_workers_runs_two_processes_that_all_answer(home, tmp_path):
    running = serve(home, tmp_path, "--workers", "2")
    base, process = next(running)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        workers: list[psutil.Process] = []
        while time.monotonic() < deadline:
            workers = [
                child
                for child in psutil.Process(process.pid).children(recursive=True)
                if "spawn_main" in " ".join(child.cmdline())  # not the resource tracker
            ]
            if len(workers) >= 2:
                break
            time.sleep(0.2)
        answers = [request(f"{base}/predict", SEED_REQUEST) for _ in range(40)]
    finally:
        running.close()

    assert len(workers) == 2
    assert {status for status, _body in answers} == {200}
    assert len({body["probability"] for _status, body in answers}) == 1
