"""The monitoring loop, live: traffic shifts, drift is seen, one signed alert, one resolution.

A version trained with a drift rule is served by ``tabops serve``; a real HTTP receiver on
127.0.0.1 stands in for the team's webhook. Traffic goes normal, shifted, normal again, 5,000
records at a time, with their labels posted; after each, the rules are checked.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import httpx2
import pandas as pd
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from conftest import HEART_CSV, copy_fast_example, make_registry
from e2e.test_soak import running_server
from tabops.monitoring.webhooks import verify_signature
from tabops.project import load_project
from tabops.training.register import train_project

pytestmark = pytest.mark.slow

MODEL = "heart-failure"
RECORDS = 5_000
HANG_SECONDS = 120
"""Far beyond a log flush (1 s) on a busy machine: a deadline that only stops a hang."""
SECRET = "a shared secret for the receiver"
RULES = {
    "window": str(RECORDS),
    "alerts": [{"name": "drift", "metric": "psi", "feature": "*", "above": 0.2}],
}


class Receiver(BaseHTTPRequestHandler):
    """Keeps every POST it gets (headers and body) and answers 204."""

    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    received: list[tuple[dict[str, str], bytes]] = []
    handler = type("Hook", (Receiver,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/tabops", received
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def watched_home(tmp_path: Path) -> Path:
    """A home with one heart-failure version trained with the drift rule."""
    folder = copy_fast_example(tmp_path / "project")
    path = folder / "tabops.yaml"
    document = yaml.safe_load(path.read_text())
    document["monitoring"] = RULES
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    home = tmp_path / "home"
    train_project(*load_project(folder), make_registry(home))
    return home


def traffic(seed: int, shifted: bool) -> pd.DataFrame:
    """RECORDS patients drawn from the dataset; shifted: twenty years older (age only)."""
    frame = pd.read_csv(HEART_CSV).sample(RECORDS, replace=True, random_state=seed)
    if shifted:
        frame = frame.assign(age=(frame["age"] + 20).clip(upper=95))
    return frame


def send(http: httpx2.Client, frame: pd.DataFrame) -> None:
    """Score the records, wait until the log holds them, post their labels."""
    records = frame.drop(columns=["DEATH_EVENT"]).to_dict("records")
    answer = http.post(f"/v1/models/{MODEL}/predict/batch", json={"records": records})
    assert answer.status_code == 200, answer.text
    ids = [item["prediction_id"] for item in answer.json()["predictions"]]
    deadline = time.monotonic() + HANG_SECONDS
    while http.get(f"/v1/predictions/{ids[-1]}").status_code != 200:
        assert time.monotonic() < deadline, "the last prediction was never logged (a hang)"
        time.sleep(0.1)
    labels = [
        {"prediction_id": i, "label": int(y)}
        for i, y in zip(ids, frame["DEATH_EVENT"], strict=True)
    ]
    posted = http.post(f"/v1/models/{MODEL}/feedback", json={"labels": labels})
    assert posted.status_code == 200, posted.text
    assert posted.json()["accepted"] == RECORDS


def check(http: httpx2.Client) -> list[dict]:
    answer = http.post(f"/v1/models/{MODEL}/monitoring/check")
    assert answer.status_code == 200, answer.text
    return answer.json()["events"]


def latest(http: httpx2.Client) -> dict:
    answer = http.get(f"/v1/models/{MODEL}/monitoring", params={"window": str(RECORDS)})
    assert answer.status_code == 200, answer.text
    [version] = answer.json()["versions"]
    return version


def gauges(http: httpx2.Client) -> dict[tuple[str, str], float]:
    """The drift and alert gauges of /metrics, by name and feature."""
    answer = http.get("/metrics")
    assert answer.status_code == 200, answer.text
    return {
        (sample.name, sample.labels["feature"]): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
        if sample.name in ("tabops_alert_firing", "tabops_drift_psi")
    }


def test_a_shift_fires_one_signed_alert_and_its_return_one_resolution(
    watched_home: Path, tmp_path: Path, receiver
):
    url, received = receiver
    settings = {"monitoring__webhook_url": url, "monitoring__webhook_secret": SECRET}
    with (
        ExitStack() as stack,
        running_server(watched_home, tmp_path, **settings) as (base, _process, headers),
    ):
        http = httpx2.Client(base_url=base, headers=headers, timeout=120)
        stack.callback(http.close)

        send(http, traffic(seed=1, shifted=False))
        normal = latest(http)
        assert all(f["psi"] < 0.1 for f in normal["drift"]["features"].values()), normal["drift"]
        assert check(http) == []
        assert received == []

        send(http, traffic(seed=2, shifted=True))
        shifted = latest(http)
        psi = {name: f["psi"] for name, f in shifted["drift"]["features"].items()}
        assert psi.pop("age") > 0.2
        assert max(psi.values()) < 0.1, psi
        assert shifted["performance"]["rows"] == RECORDS
        assert 0.5 < shifted["performance"]["roc_auc"] <= 1
        [fired] = check(http)
        assert (fired["event"], fired["feature"]) == ("firing", "age")
        assert check(http) == []  # the alert holds: nothing more is sent
        exported = gauges(http)
        assert exported[("tabops_alert_firing", "age")] == 1
        assert exported[("tabops_drift_psi", "age")] > 0.2

        send(http, traffic(seed=3, shifted=False))
        [resolved] = check(http)
        assert (resolved["event"], resolved["feature"]) == ("resolved", "age")

    assert [json.loads(body)["event"] for _, body in received] == ["firing", "resolved"]
    for sent_headers, body in received:
        lowered = {key.lower(): value for key, value in sent_headers.items()}
        assert verify_signature(
            SECRET, lowered["x-tabops-timestamp"], body, lowered["x-tabops-signature"]
        )
        assert json.loads(body)["feature"] == "age"
