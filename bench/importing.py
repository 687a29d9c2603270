"""Time importing a model trained elsewhere, and serving the imported version.

Two pipelines are fitted on the Kueski credit table (26,457 rows) and saved with joblib:
gradient boosting (serves through scikit-learn: its float32 ONNX trees miss 1e-9) and
logistic regression (serves through its column-input ONNX graph). Each is imported with a
10,000-row labelled sample; then one record and a batch of 1,000 are scored through the
version and through the user's own ``predict_proba`` on a one-row DataFrame.

    .venv/bin/python bench/importing.py [--repeats 300]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=300)
    repeats = parser.parse_args().repeats
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
