"""How long a 1,000-record batch takes to decode, validate and score, by the form it comes in.

Usage (from the repository root):
    .venv/bin/python bench/records.py [--repeats 30]

Trains the heart-failure example with fast settings into a temporary home, then answers the
same 1,000 records through the v1 batch codec and the serving core, in process, as three
bodies: integers and flags written as integers (``3``), as floats (``3.0``, what
``DataFrame.to_dict`` writes once a column has held a gap), and with one record the typed
decoder cannot take (a flag written ``"1"``, refused by full validation, which names it).
Prints the median and fastest time per batch.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

from tabops.errors import InvalidInputError
from tabops.model.predictor import Predictor
from tabops.project import PROJECT_FILE, load_project
from tabops.registry import LocalArtifactStore, ModelRegistry
from tabops.server.codecs.v1 import predict_batch
from tabops.serving.context import RequestContext
from tabops.serving.core import ServingCore
from tabops.training.register import train_project

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "heart-failure"
ROWS = 1_000


def trained_predictor(work: Path) -> Predictor:
    folder = work / "project"
    shutil.copytree(EXAMPLE, folder)
    document = yaml.safe_load((folder / PROJECT_FILE).read_text())
    document["train"].update(
        cv_folds=3, candidates=["logistic_regression"], time_budget_s=3, bootstrap_resamples=50
    )
    (folder / PROJECT_FILE).write_text(yaml.safe_dump(document, sort_keys=False))
    registry = ModelRegistry(LocalArtifactStore(work / "registry"))
    project, _ = load_project(folder)
    train_project(project, folder, registry)
    return Predictor.load(registry, project.name)


def bodies(predictor: Predictor) -> dict[str, bytes]:
    frame = pd.read_csv(EXAMPLE / "heart_failure_clinical_records_dataset.csv")
    frame = frame[predictor.spec.feature_names]
    frame = pd.concat([frame] * (ROWS // len(frame) + 1)).head(ROWS)
    as_ints = frame.to_dict("records")
    as_floats = frame.astype(float).to_dict("records")
    one_bad = [dict(record) for record in as_ints]
    one_bad[500]["anaemia"] = "1"
    return {
        "integers as 3": json.dumps({"records": as_ints}).encode(),
        "integers as 3.0": json.dumps({"records": as_floats}).encode(),
        "one refused record": json.dumps({"records": one_bad}).encode(),
    }


async def answer(core: ServingCore, predictor: Predictor, body: bytes) -> None:
    # The refused record: the time to name it is what is measured.
    with contextlib.suppress(InvalidInputError):
        await predict_batch(core, RequestContext("predict_batch"), predictor, body, 10_000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tabops-records-") as work:
        print("training the example with fast settings...", file=sys.stderr)
        predictor = trained_predictor(Path(work))
        core = ServingCore()
        print(f"| body ({ROWS:,} records) | median ms | fastest ms |")
        print("|---|---:|---:|")
        for name, body in bodies(predictor).items():
            asyncio.run(answer(core, predictor, body))  # warm up
            times = []
            for _ in range(arguments.repeats):
                started = time.perf_counter()
                asyncio.run(answer(core, predictor, body))
                times.append((time.perf_counter() - started) * 1000)
            print(f"| {name} | {statistics.median(times):.2f} | {min(times):.2f} |")


if __name__ == "__main__":
    main()
