"""A bounded soak: eight clients for 30 seconds against a live server, valid and invalid requests.

Eight threads, each with its own keep-alive connection, send a fixed mix of valid requests
(one record, a batch, the model list, job submissions and polls) and invalid ones
(malformed JSON, an unknown field, a wrong type, an unknown model, a batch over the
server's limit) until ``DURATION_SECONDS`` have passed. Nothing may be answered 5xx;
every valid request gets its success status, every invalid one a 4xx in the error document
naming the field at fault; and the server's resident memory at the end stays within
``RSS_MARGIN`` of what it was once warmed up.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2
import psutil
import pytest

from e2e.test_serve import HOST, TABOPS, free_port, wait_until_live
from tabops.config import Settings
from tabops.database import create_database_engine
from tabops.security.keys import KeyStore

pytestmark = pytest.mark.slow

DURATION_SECONDS = 30.0
WARMUP_SECONDS = 10.0  # traffic before the reference RSS is taken: caches, pools, arenas
# Allowed RSS growth from the end of warm-up to the end of the run: the allocator keeps
# freed arenas and SQLite its page cache, which move RSS by a few percent without a leak.
RSS_MARGIN = 0.15
CLIENTS = 8
MAX_BATCH_ROWS = 50  # the server's limit, so that a batch over it stays cheap to send
BATCH_ROWS = 20
JOB_RECORDS = 10
UNKNOWN_MODEL = "no-such-model"
# Request kinds and their weights in the mix; the invalid ones with the field they break.
VALID = {"predict": 40, "batch": 15, "models": 10, "submit_job": 5, "poll_job": 10}
INVALID = {
    "malformed_json": ("body", 4),
    "unknown_field": ("colour", 4),
    "wrong_type": (None, 4),  # the first numeric feature of the model
    "unknown_model": ("name", 4),
    "oversized_batch": ("records", 4),
}
EXPECTED_STATUS = {"predict": 200, "batch": 200, "models": 200, "submit_job": 202, "poll_job": 200}


@contextmanager
def running_server(
    home: Path, folder: Path, **settings: str
) -> Iterator[tuple[str, subprocess.Popen, dict[str, str]]]:
    """``tabops serve`` over ``home``, logging in ``folder``: URL, process, admin key header.

    An admin key is created in ``home`` first, so every request is authenticated and
    checked as in production. ``settings`` are more ``TABOPS_*`` variables
    (``max_batch_rows="50"``). Training over the API is refused: the only project root is
    an empty folder.
    """
    roots = folder / "projects"
    roots.mkdir()
    keys = KeyStore(create_database_engine(Settings(home=home).metadata_url))
    headers = {"Authorization": f"Bearer {keys.create('fuzzer', 'admin')[1]}"}
    keys.engine.dispose()
    env = {key: value for key, value in os.environ.items() if not key.startswith("TABOPS_")}
    env |= {"TABOPS_HOME": str(home), "TABOPS_PROJECT_ROOTS": str(roots)}
    env |= {f"TABOPS_{key.upper()}": value for key, value in settings.items()}
    port = free_port()
    log = folder / "serve.log"
    command = [str(TABOPS), "serve", "--host", HOST, "--port", str(port)]
    with log.open("wb") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=output, cwd=folder)
        try:
            base = f"http://{HOST}:{port}"
            wait_until_live(base, process, log)
            yield base, process, headers
        finally:
            process.terminate()
            process.wait(timeout=30)


@dataclass(frozen=True)
class Answer:
    """What one request was and how it was answered."""

    kind: str
    status: int
    fields: tuple[str, ...]  # the fields an error document named


class Client:
    """One soak client: its own connection, random stream and submitted jobs."""

    def __init__(
        self, base: str, headers: dict[str, str], model: str, records: list[dict], seed: int
    ) -> None:
        self.http = httpx2.Client(base_url=base, headers=headers, timeout=60)
        self.random = random.Random(seed)
        self.model = model
        self.records = records
        self.jobs: list[str] = []
        self.numeric = next(k for k, v in records[0].items() if isinstance(v, int | float))
        self.kinds = [*VALID, *INVALID]
        self.weights = [*VALID.values(), *(weight for _field, weight in INVALID.values())]

    def run(self, deadline: float, answers: list[Answer]) -> None:
        """Send requests until ``deadline`` (a ``time.monotonic`` value)."""
        with self.http:
            while time.monotonic() < deadline:
                kind = self.random.choices(self.kinds, self.weights)[0]
                answers.append(self.send(kind))

    def send(self, kind: str) -> Answer:
        if kind == "poll_job" and not self.jobs:
            kind = "submit_job"  # nothing to poll yet
        predict = f"/v1/models/{self.model}/predict"
        record = self.random.choice(self.records)
        requests: dict[str, Callable[[], httpx2.Response]] = {
            "predict": lambda: self.http.post(predict, json=record),
            "batch": lambda: self.http.post(f"{predict}/batch", json={"records": self.batch()}),
            "models": lambda: self.http.get("/v1/models"),
            "submit_job": self.submit_job,
            "poll_job": self.poll_job,
            "malformed_json": lambda: self.http.post(predict, content=b'{"age": 20,'),
            "unknown_field": lambda: self.http.post(predict, json=record | {"colour": "red"}),
            "wrong_type": lambda: self.http.post(predict, json=record | {self.numeric: "high"}),
            "unknown_model": lambda: self.http.post(
                f"/v1/models/{UNKNOWN_MODEL}/predict", json=record
            ),
            "oversized_batch": lambda: self.http.post(
                f"{predict}/batch", json={"records": self.batch(MAX_BATCH_ROWS + 1)}
            ),
        }
        response = requests[kind]()
        return Answer(kind, response.status_code, error_fields(response))

    def batch(self, rows: int = BATCH_ROWS) -> list[dict]:
        return [self.random.choice(self.records) for _ in range(rows)]

    def submit_job(self) -> httpx2.Response:
        records = self.batch(JOB_RECORDS)
        response = self.http.post(f"/v1/models/{self.model}/jobs", json={"records": records})
        if response.status_code == 202:
            self.jobs.append(response.json()["status_url"])
        return response

    def poll_job(self) -> httpx2.Response:
        return self.http.get(self.random.choice(self.jobs))


def error_fields(response: httpx2.Response) -> tuple[str, ...]:
    """The fields an error document names; empty for any other answer."""
    if response.status_code < 400:
        return ()
    try:
        details = response.json()["error"]["details"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return ()
    return tuple(str(detail.get("field")) for detail in details)


def resident_bytes(process: psutil.Process) -> int:
    """RSS of the server process and any children it started."""
    processes = [process, *process.children(recursive=True)]
    return sum(member.memory_info().rss for member in processes)


def test_soak_answers_every_request_with_no_5xx_and_flat_memory(trained_home, tmp_path):
    answers: list[Answer] = []  # list.append is atomic: the clients share it
    home = shutil.copytree(trained_home, tmp_path / "home")
    live = running_server(home, tmp_path, max_batch_rows=str(MAX_BATCH_ROWS))
    with live as (base, process, headers):
        with httpx2.Client(base_url=base, headers=headers, timeout=60) as http:
            model = http.get("/v1/models").json()[0]["name"]
            records = [
                http.get(f"/v1/models/{model}/example", params={"index": i}).json()["record"]
                for i in range(20)
            ]
        server = psutil.Process(process.pid)
        start = time.monotonic()
        deadline = start + DURATION_SECONDS
        clients = [Client(base, headers, model, records, seed) for seed in range(CLIENTS)]
        with ThreadPoolExecutor(CLIENTS) as pool:
            runs = [pool.submit(client.run, deadline, answers) for client in clients]
            time.sleep(WARMUP_SECONDS)
            warm_rss, warm_count = resident_bytes(server), len(answers)
            for run in runs:
                run.result()  # a client's own failure (a refused connection) fails the test
        end_rss = resident_bytes(server)
        elapsed = time.monotonic() - start

    statuses = Counter((answer.kind, answer.status) for answer in answers)
    summary = (
        f"{len(answers)} requests in {elapsed:.0f} s ({warm_count} in warm-up); "
        f"RSS {warm_rss / 2**20:.1f} MiB after warm-up, {end_rss / 2**20:.1f} MiB at the end; "
        f"{sorted(statuses.items())}"
    )
    print(summary)
    wrong = Counter(answer for answer in answers if not is_expected(answer, clients[0].numeric))
    assert not wrong, f"{wrong.most_common(10)}; {summary}"
    assert {answer.kind for answer in answers} == {*VALID, *INVALID}, summary
    assert end_rss <= warm_rss * (1 + RSS_MARGIN), summary


def is_expected(answer: Answer, numeric: str) -> bool:
    """A valid request got its success status; an invalid one, a 4xx naming its field."""
    if answer.kind in VALID:
        return answer.status == EXPECTED_STATUS[answer.kind]
    field = INVALID[answer.kind][0] or numeric
    return 400 <= answer.status < 500 and field in answer.fields
