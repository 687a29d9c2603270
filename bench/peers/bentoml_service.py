"""The model as a BentoML service: one worker, a typed record in, probability and label out.

Started by the benchmark as ``bentoml serve bentoml_service:BenchModel`` from this folder,
inside the virtualenv ``bench/.peers/bentoml``, with ``BENCH_PIPELINE`` naming the pickled
pipeline and ``BENCH_THRESHOLD`` its decision threshold.
"""

import os
import pickle
from pathlib import Path
from typing import Any

import bentoml
import pandas as pd
from pydantic import create_model

FEATURES = [f"f{index:02d}" for index in range(30)]
Record = create_model("Record", **dict.fromkeys(FEATURES, (float, ...)))


# No access log, as for every other server measured (BentoML writes one line a request).
@bentoml.service(workers=1, logging={"access": {"enabled": False}})
class BenchModel:
    """One pickled scikit-learn pipeline behind two APIs."""

    def __init__(self) -> None:
        self.pipeline = pickle.loads(Path(os.environ["BENCH_PIPELINE"]).read_bytes())
        self.threshold = float(os.environ["BENCH_THRESHOLD"])

    def decide(self, probability: float) -> dict[str, Any]:
        """Probability of the positive class and the label at the threshold."""
        return {"probability": probability, "label": int(probability >= self.threshold)}

    # A positional-only parameter is BentoML's "root input": the body is the record itself.
    @bentoml.api(route="/predict")
    def predict(self, record: Record, /) -> dict[str, Any]:
        """Score one record."""
        frame = pd.DataFrame([record.model_dump()])
        return self.decide(float(self.pipeline.predict_proba(frame)[0, 1]))

    @bentoml.api(route="/predict/batch")
    def predict_batch(self, records: list[Record]) -> dict[str, Any]:
        """Score ``{"records": [...]}``, answering in the same order."""
        frame = pd.DataFrame([record.model_dump() for record in records])
        probabilities = self.pipeline.predict_proba(frame)[:, 1]
        return {"predictions": [self.decide(float(p)) for p in probabilities]}
