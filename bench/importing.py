"""Time importing a model trained elsewhere, and serving the imported version.

Two pipelines are fitted on the Kueski credit table (26,457 rows) and saved with joblib:
gradient boosting (serves through scikit-learn: its float32 ONNX trees miss 1e-9) and
logistic regression (serves through its column-input ONNX graph). Each is imported with a
10,000-row labelled sample; then one record and a batch of 1,000 are scored through the
version and through the user's own ``predict_proba`` on a one-row DataFrame.

    .venv/bin/python bench/importing.py [--repeats 300] [--end-to-end]

With ``--end-to-end``, the gradient boosting file is also imported the way a user does it:
``tabops models import`` in a new process, then ``tabops serve`` started on the new registry,
timed until its first answer to ``POST /v1/models/bench/predict``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from peers.processes import free_port  # noqa: E402

from import_models import (  # noqa: E402  # the test helpers fit and save the models
    CATEGORIES,
    NUMBERS,
    TARGET,
    gradient_boosting_pipeline,
    logistic_pipeline,
    read_kueski,
    save_joblib,
    split_kueski,
    with_car_letters,
)
from tabops.model.predictor import Predictor  # noqa: E402
from tabops.registry import LocalArtifactStore, ModelRegistry  # noqa: E402
from tabops.training.importing import ImportOptions, import_model  # noqa: E402


def median_us(call: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6


def run_case(
    label: str, model: Any, rows: pd.DataFrame, columns: list[str], folder: Path, repeats: int
) -> None:
    registry = ModelRegistry(LocalArtifactStore(folder / "registry"))
    path = save_joblib(model, folder / "model.joblib")
    sample_path = folder / "sample.csv"
    rows.to_csv(sample_path, index=False)
    started = time.perf_counter()
    outcome = import_model(path, "bench", sample_path, registry, ImportOptions(target=TARGET))
    seconds = time.perf_counter() - started
    predictor = Predictor.load(registry, "bench")
    frame = pd.read_csv(sample_path)[columns]
    records = [
        {key: None if pd.isna(value) else value for key, value in row.items()}
        for row in frame.head(1_000).to_dict("records")
    ]
    one = frame.head(1)
    record = median_us(lambda: predictor.predict_record(records[0]), repeats)
    own = median_us(lambda: model.predict_proba(one), repeats)
    batch = median_us(lambda: predictor.predict_records(records), max(repeats // 10, 3))
    print(f"{label}: imported {len(frame):,} sample rows in {seconds:.2f} s")
    print(f"  serves through {outcome.compiled}")
    print(f"  one record: {record:.0f} us (own predict_proba on a 1-row DataFrame: {own:.0f} us)")
    print(f"  1,000 records: {batch / 1000:.1f} ms")


def end_to_end(model: Any, rows: pd.DataFrame, columns: list[str], folder: Path) -> None:
    """Seconds from ``tabops models import`` to the first prediction a new server answers."""
    path = save_joblib(model, folder / "model.joblib")
    sample_path = folder / "sample.csv"
    rows.to_csv(sample_path, index=False)
    record = {
        key: None if pd.isna(value) else value for key, value in rows[columns].iloc[0].items()
    }
    body = json.dumps(record, default=str).encode()
    environment = {**os.environ, "TABOPS_HOME": str(folder / "home")}
    tabops = str(Path(sys.executable).parent / "tabops")
    port = free_port()
    started = time.perf_counter()
    subprocess.run(
        [tabops, "models", "import", str(path), "--name", "bench", "--sample", str(sample_path)],
        env=environment,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    imported = time.perf_counter() - started
    server = subprocess.Popen(
        [tabops, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/v1/models/bench/predict",
                data=body,
                headers={"Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(request, timeout=5) as reply:
                    answer = json.loads(reply.read())
                break
            except OSError:
                if server.poll() is not None:
                    raise SystemExit("tabops serve exited before answering") from None
                time.sleep(0.05)
        total = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(
        f"end to end ({len(rows):,} sample rows): 'tabops models import' {imported:.1f} s, "
        f"first prediction served {total:.1f} s after the import began "
        f"(probability {answer['probability']:.4f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--end-to-end", action="store_true")
    arguments = parser.parse_args()
    repeats = arguments.repeats
    train, sample = split_kueski(read_kueski())
    lettered = with_car_letters(train), with_car_letters(sample)
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        (folder / "boosting").mkdir()
        (folder / "logistic").mkdir()
        run_case(
            "gradient boosting",
            gradient_boosting_pipeline(train),
            sample,
            NUMBERS + CATEGORIES,
            folder / "boosting",
            repeats,
        )
        if arguments.end_to_end:
            (folder / "cli").mkdir()
            end_to_end(
                gradient_boosting_pipeline(train), sample, NUMBERS + CATEGORIES, folder / "cli"
            )
        run_case(
            "logistic regression",
            logistic_pipeline(lettered[0]),
            lettered[1],
            ["nb_previous_loans", "age", *CATEGORIES],
            folder / "logistic",
            repeats,
        )


if __name__ == "__main__":
    main()
