"""kill -9 of ``tabops serve`` while it works through 1,000 queued jobs loses none of them.

A real server process takes 1,000 scoring jobs with no job threads (so all stay queued),
is stopped, and is started again with two job threads; once some jobs are done it is
killed with SIGKILL mid-run, then started a third time. Every job must end succeeded,
exactly once: each result holds exactly its own records, and no prediction id repeats.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import orjson
import pandas as pd
import pytest

from conftest import HEART_CSV
from e2e.test_serve import HOST, TABOPS, free_port, wait_until_live

pytestmark = pytest.mark.slow

JOBS = 1_000
RECORDS_PER_JOB = 25
HANG_SECONDS = 120
"""Far beyond what the waits take on a busy machine: a deadline that only stops a hang."""


@contextmanager
def tabops_serve(home: Path, log: Path, job_workers: int) -> Iterator[tuple[int, subprocess.Popen]]:
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("TABOPS_")}
    env |= {"TABOPS_HOME": str(home), "TABOPS_JOB_WORKERS": str(job_workers)}
    command = [str(TABOPS), "serve", "--host", HOST, "--port", str(port)]
    with log.open("ab") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=output, cwd=home)
        try:
            wait_until_live(f"http://{HOST}:{port}", process, log)
            yield port, process
        finally:
            if process.poll() is None:
                process.terminate()
            process.wait(timeout=30)


def call(connection: http.client.HTTPConnection, method: str, url: str, body=None) -> tuple:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    connection.request(method, url, body=body, headers=headers)
    response = connection.getresponse()
    return response.status, json.loads(response.read())


def count(port: int, status: str) -> int:
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        code, jobs = call(connection, "GET", f"/v1/jobs?status={status}&limit=1000")
    finally:
        connection.close()
    assert code == 200, jobs
    return len(jobs)


def test_no_job_is_lost_or_reported_twice_after_kill_9(home, tmp_path):
    heart = pd.read_csv(HEART_CSV).drop(columns=["DEATH_EVENT"])
    log = tmp_path / "serve.log"
    submitted: dict[str, list[dict]] = {}

    with tabops_serve(home, log, job_workers=0) as (port, _process):
        connection = http.client.HTTPConnection(HOST, port, timeout=30)
        for index in range(JOBS):
            start = (index * RECORDS_PER_JOB) % (len(heart) - RECORDS_PER_JOB)
            records = heart.iloc[start : start + RECORDS_PER_JOB].to_dict("records")
            body = json.dumps({"records": records})
            status, answer = call(connection, "POST", "/v1/models/heart-failure/jobs", body)
            assert status == 202, answer
            submitted[answer["job_id"]] = records
        connection.close()
        assert count(port, "queued") == JOBS

    with tabops_serve(home, log, job_workers=2) as (port, process):
        deadline = time.monotonic() + HANG_SECONDS
        while count(port, "succeeded") < JOBS // 5 or count(port, "running") == 0:
            assert time.monotonic() < deadline, "jobs did not start running"
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    with closing(sqlite3.connect(home / "tabops.db")) as database:
        rows = database.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()
        states = dict(rows)
        interrupted = {
            row[0] for row in database.execute("SELECT id FROM jobs WHERE status = 'running'")
        }
    assert states.get("queued", 0) > 0, f"no job was left queued at the kill: {states}"

    with tabops_serve(home, log, job_workers=2) as (port, _process):
        deadline = time.monotonic() + 2.5 * HANG_SECONDS
        while count(port, "succeeded") < JOBS:
            assert time.monotonic() < deadline, f"only {count(port, 'succeeded')} jobs finished"
            time.sleep(0.2)
        assert count(port, "failed") == 0
        assert count(port, "queued") == 0
        assert count(port, "running") == 0
        connection = http.client.HTTPConnection(HOST, port, timeout=30)
        documents = {}
        for job_id in submitted:
            status, documents[job_id] = call(connection, "GET", f"/v1/jobs/{job_id}")
            assert status == 200
        connection.close()

    prediction_ids: set[str] = set()
    for job_id, records in submitted.items():
        job = documents[job_id]
        assert job["status"] == "succeeded"
        assert 1 <= job["attempts"] <= 2
        result = orjson.loads((home / "jobs" / job_id / "result.json").read_bytes())
        assert len(result["predictions"]) == len(records) == job["result"]["rows"]
        prediction_ids.update(p["prediction_id"] for p in result["predictions"])
    assert len(prediction_ids) == JOBS * RECORDS_PER_JOB
    retried = {job_id for job_id, job in documents.items() if job["attempts"] == 2}
    assert retried == interrupted
    print(f"at the kill: {states}; re-run after restart: {len(retried)}")
