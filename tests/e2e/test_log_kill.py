"""A server killed with SIGKILL under load leaves a readable prediction log missing at most
the last flush intervals.

Two clients post single predictions to a live ``tabops serve`` and note when each answer
arrived; the server is killed mid-load. Then every segment file must read with pyarrow (temp
files of an interrupted write are dot-files, never read), no id may be logged twice, and
every prediction answered earlier than the kill minus two flush intervals must be logged.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import httpx2
import pyarrow.parquet as pq
import pytest

from e2e.test_soak import running_server
from tabops.monitoring.layout import SegmentName

pytestmark = pytest.mark.slow

FLUSH_SECONDS = 0.25
LOAD_SECONDS = 4.0
CLIENTS = 2


def post_until_refused(
    base: str, headers: dict[str, str], record: dict, answered: list[tuple[float, str]]
) -> None:
    """Post one record over and over, noting (arrival time, id), until the server is gone."""
    with httpx2.Client(base_url=base, headers=headers, timeout=10) as http:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                answer = http.post("/predict", json=record)
            except httpx2.HTTPError:
                return
            assert answer.status_code == 200, answer.text
            answered.append((time.time(), answer.json()["prediction_id"]))


def test_a_killed_server_leaves_a_readable_log_missing_only_the_last_flushes(home, tmp_path):
    answered: list[tuple[float, str]] = []
    live = running_server(home, tmp_path, monitoring__flush_seconds=str(FLUSH_SECONDS))
    with live as (base, process, headers):
        with httpx2.Client(base_url=base, headers=headers, timeout=30) as http:
            model = http.get("/v1/models").json()[0]["name"]
            record = http.get(f"/v1/models/{model}/example").json()["record"]
        clients = [
            threading.Thread(target=post_until_refused, args=(base, headers, record, answered))
            for _ in range(CLIENTS)
        ]
        for client in clients:
            client.start()
        time.sleep(LOAD_SECONDS)
        killed_at = time.time()
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        for client in clients:
            client.join(timeout=30)

    files = [p for p in (home / "predictions").rglob("*") if p.is_file()]
    segments = [p for p in files if SegmentName.parse(p.name) is not None]
    others = [p for p in files if p not in segments]
    assert all(p.name.startswith(".") for p in others), others  # temp files and locks only
    logged: list[str] = []
    for segment in segments:
        logged += pq.read_table(segment, columns=["prediction_id"]).column(0).to_pylist()
    assert len(logged) == len(set(logged))
    settled = {pid for arrived, pid in answered if arrived < killed_at - 2 * FLUSH_SECONDS}
    missing = settled - set(logged)
    print(
        f"{len(answered)} answered, {len(logged)} logged in {len(segments)} segments, "
        f"{len(settled)} answered before the last two flushes, {len(missing)} of them missing"
    )
    assert len(settled) > 100
    assert not missing
