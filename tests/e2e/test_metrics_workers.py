"""``tabops serve --workers 2``: whichever worker answers a scrape, /metrics counts them all."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import SEED_REQUEST
from e2e.test_serve import HOST, TABOPS, free_port, wait_until_live
from tabops.config import Settings
from tabops.database import create_database_engine
from tabops.security.keys import KeyStore

pytestmark = pytest.mark.slow

MODEL = "heart-failure"
PREDICT = f"/v1/models/{MODEL}/predict"
ROUND = 20  # requests sent between two looks at which workers answered
MAX_ROUNDS = 20
SCRAPES = 8
FLUSH_SECONDS = 2.5  # more than twice a worker's flush interval
STARTUP_SECONDS = 90.0
STARTED = "Application startup complete."  # uvicorn's line, once per worker


@dataclass(frozen=True)
class Server:
    """A live ``tabops serve --workers 2``: where it listens, its key, its files."""

    base: str
    headers: dict[str, str]
    process: subprocess.Popen
    log: Path  # stderr: the JSON log lines

    def lines(self) -> list[dict]:
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def access_lines(self) -> list[dict]:
        return [line for line in self.lines() if line["logger"] == "tabops.access"]

    def wait_for_workers(self, count: int) -> None:
        """Until ``count`` workers have started (the first to start answers the first health
        check; on a busy machine the second may take many seconds more)."""
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            started = {line["pid"] for line in self.lines() if line["message"] == STARTED}
            if len(started) >= count:
                return
            time.sleep(0.2)
        pytest.fail(
            f"{count} workers did not start in {STARTUP_SECONDS} s:\n{self.log.read_text()}"
        )


@contextmanager
def two_workers(home: Path, folder: Path) -> Iterator[Server]:
    keys = KeyStore(create_database_engine(Settings(home=home).metadata_url))
    headers = {"Authorization": f"Bearer {keys.create('e2e', 'predict')[1]}"}
    keys.engine.dispose()
    env = {key: value for key, value in os.environ.items() if not key.startswith("TABOPS_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env["TABOPS_HOME"] = str(home)
    port = free_port()
    command = [str(TABOPS), "serve", "--host", HOST, "--port", str(port), "--workers", "2"]
    command += ["--log-format", "json", "--access-log"]
    log = folder / "serve.err"
    with (folder / "serve.out").open("wb") as out, log.open("wb") as err:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=err, cwd=folder)
        try:
            base = f"http://{HOST}:{port}"
            wait_until_live(base, process, log)
            server = Server(base, headers, process, log)
            server.wait_for_workers(2)
            yield server
        finally:
            process.terminate()
            process.wait(timeout=30)


def counted(text: str, name: str, **labels: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def test_metrics_count_every_request_whichever_worker_is_scraped(trained_home, tmp_path):
    home = shutil.copytree(trained_home, tmp_path / "home")
    record = json.loads(SEED_REQUEST)["features"]
    with two_workers(home, tmp_path) as server:
        # A new connection per request, so that both workers take some.
        close = {**server.headers, "Connection": "close"}
        sent = 0
        with httpx2.Client(base_url=server.base, headers=close, timeout=30) as http:
            for _ in range(MAX_ROUNDS):
                for _ in range(ROUND):
                    sent += 1
                    answer = http.post(
                        PREDICT, json=record, headers={"X-Request-ID": f"e2e-{sent}"}
                    )
                    assert answer.status_code == 200, answer.text
                    assert answer.headers["x-request-id"] == f"e2e-{sent}"
                workers = {
                    line["pid"] for line in server.access_lines() if line["route"] != "/metrics"
                }
                if len(workers) == 2:
                    break
            assert len(workers) == 2, "one worker took every request"
            # Each worker adds its counts to the shared files once a second.
            time.sleep(FLUSH_SECONDS)
            scrapes = [http.get("/metrics") for _ in range(SCRAPES)]
        folder = home / "metrics" / str(server.process.pid)
        assert folder.is_dir()

    assert all(scrape.status_code == 200 for scrape in scrapes)
    labels = {"route": "/v1/models/{name}/predict", "model": MODEL, "version": "1"}
    for scrape in scrapes:
        assert counted(scrape.text, "tabops_requests_total", status="200", **labels) == sent
        assert counted(scrape.text, "tabops_predictions_total", model=MODEL) == sent
        assert (
            counted(scrape.text, "tabops_request_duration_seconds_count", route=labels["route"])
            == sent
        )
    lines = server.access_lines()
    predicted = [line for line in lines if line["route"] == labels["route"]]
    assert sorted(line["request_id"] for line in predicted) == sorted(
        f"e2e-{number}" for number in range(1, sent + 1)
    )
    assert not folder.exists()  # removed when the server stopped
