"""The seeds' way to serve a model: FastAPI, a pydantic record, a one-row DataFrame.

Started by the benchmark as ``uvicorn seed_fastapi:app`` from this folder, with
``BENCH_PIPELINE`` naming the pickled pipeline and ``BENCH_THRESHOLD`` its decision threshold.
"""

import os
import pickle
from pathlib import Path
from typing import Any

import pandas as pd
from fastapi import FastAPI
from pydantic import BaseModel, create_model

FEATURES = [f"f{index:02d}" for index in range(30)]
Record = create_model("Record", **dict.fromkeys(FEATURES, (float, ...)))


class Batch(BaseModel):
    """Records scored in one call."""

    records: list[Record]


pipeline = pickle.loads(Path(os.environ["BENCH_PIPELINE"]).read_bytes())
threshold = float(os.environ["BENCH_THRESHOLD"])
app = FastAPI()


def decide(probability: float) -> dict[str, Any]:
    """Probability of the positive class and the label at the threshold."""
    return {"probability": probability, "label": int(probability >= threshold)}


@app.post("/predict")
def predict(record: Record) -> dict[str, Any]:
    """Score one record."""
    frame = pd.DataFrame([record.model_dump()])
    return decide(float(pipeline.predict_proba(frame)[0, 1]))


@app.post("/predict/batch")
def predict_batch(batch: Batch) -> dict[str, Any]:
    """Score a list of records, answering in the same order."""
    frame = pd.DataFrame([record.model_dump() for record in batch.records])
    return {"predictions": [decide(float(p)) for p in pipeline.predict_proba(frame)[:, 1]]}
