"""What late labels, realized performance and label-free estimates cost.

Usage (from the repository root):
    .venv/bin/python bench/labels.py [--labels 100000] [--estimate-rows 10000000]
                                     [--database-url URL]

Prints: ``EstimateAccumulator`` rows/s over log-sized batches and ``performance`` on 1M
rows; then, on the heart-failure example trained into a temp home (logistic regression, a
few seconds), ``--labels`` predictions served in batches through ``create_app`` and flushed
to the prediction log, and the time to store one label for each (``LabelStore.add``: log
lookup and upsert), to replace them all, to post them to ``POST .../feedback`` as JSON,
and to read them back (``labeled``). SQLite under the home unless ``--database-url``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from peers.models import train_fast_example

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "heart-failure"
MODEL = "heart-failure"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=100_000, help="predictions to label")
    parser.add_argument("--estimate-rows", type=int, default=10_000_000)
    parser.add_argument("--database-url", help="metadata database (default: SQLite in home)")
    return parser.parse_args()


def bench_metrics(rows: int) -> None:
    from tabops.monitoring.performance import EstimateAccumulator, performance

    rng = np.random.default_rng(0)
    batch = rng.beta(1.2, 3.0, size=65_536)
    decided = batch >= 0.5
    accumulator = EstimateAccumulator(0.5)
    started = time.perf_counter()
    for _ in range(rows // batch.size):
        accumulator.add(batch, decided)
    accumulator.result()
    seconds = time.perf_counter() - started
    print(f"estimates: {rows / seconds / 1e6:.1f} M rows/s ({seconds:.2f} s for {rows:,} rows)")
    probability = rng.uniform(size=1_000_000)
    outcome = rng.uniform(size=probability.size) < probability
    started = time.perf_counter()
    performance(probability, outcome, 0.5)
    print(f"performance on 1,000,000 labeled rows: {time.perf_counter() - started:.2f} s")


def bench_labels(home: Path, count: int, database_url: str | None) -> None:
    from fastapi.testclient import TestClient

    from tabops.config import Settings
    from tabops.monitoring.feedback import LabelItem
    from tabops.monitoring.labels import LabelStore
    from tabops.server.app import create_app

    settings = Settings(home=home, job_workers=0, database={"url": database_url})
    frame = pd.read_csv(EXAMPLE / "heart_failure_clinical_records_dataset.csv")
    records = frame.drop(columns=["DEATH_EVENT"]).to_dict("records")
    with TestClient(create_app(settings)) as client:
        ids: list[str] = []
        while len(ids) < count:
            batch = (records * 40)[: min(10_000, count - len(ids))]
            answer = client.post(f"/v1/models/{MODEL}/predict/batch", json={"records": batch})
            ids.extend(p["prediction_id"] for p in answer.json()["predictions"])
        client.app.state.prediction_log.flush()
        print(f"served and logged {len(ids):,} predictions")
        reader = client.app.state.prediction_reader
        store = LabelStore(client.app.state.keys.engine, client.app.state.deployment.registry)
        items = [LabelItem(index % 2, prediction_id=i) for index, i in enumerate(ids)]
        for what in ("store", "replace"):
            started = time.perf_counter()
            report = store.add(MODEL, items, reader)
            seconds = time.perf_counter() - started
            print(f"{what} {report.accepted:,} labels: {seconds:.2f} s, {count / seconds:,.0f}/s")
        started = time.perf_counter()
        found = reader.locate(MODEL, ids)
        print(f"  of which locating them in the log: {time.perf_counter() - started:.2f} s")
        assert len(found) == count
        body = {"labels": [{"prediction_id": i, "label": 1} for i in ids]}
        started = time.perf_counter()
        answer = client.post(f"/v1/models/{MODEL}/feedback", json=body)
        seconds = time.perf_counter() - started
        print(f"POST feedback with {count:,} labels: {seconds:.2f} s ({answer.status_code})")
        started = time.perf_counter()
        labeled = store.labeled(MODEL)
        seconds = time.perf_counter() - started
        print(f"read back {len(labeled):,} labeled predictions: {seconds:.2f} s")


def main() -> None:
    args = parse_args()
    bench_metrics(args.estimate_rows)
    with tempfile.TemporaryDirectory() as work:
        bench_labels(train_fast_example(Path(work)), args.labels, args.database_url)


if __name__ == "__main__":
    main()
