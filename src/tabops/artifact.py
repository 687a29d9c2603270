"""The files of a registry version: the model (skops, allow-listed types) and Parquet tables."""

from __future__ import annotations

import io

import pandas as pd
import skops.io as skops_io
from sklearn.pipeline import Pipeline

from tabops.errors import ArtifactIntegrityError
from tabops.training.calibration import CalibratedPipeline

MODEL_FILE = "model.skops"
ONNX_FILE = "model.onnx"
GOLDEN_FILE = "golden.parquet"
REFERENCE_FILE = "reference.parquet"
CARD_FILE = "card.html"
GOLDEN_PROBABILITY = "__probability__"
GOLDEN_TOLERANCE = 1e-6

# Types skops does not trust by default but which our own candidates contain. Anything
# else found in a model file is refused: loading it could run code.
TRUSTED_TYPES = frozenset(
    {
        "numpy.dtype",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.tree._tree.Tree",
        "sklearn.utils._bunch.Bunch",
        "tabops.encoding.FeatureEncoder",
        "tabops.training.calibration.CalibratedPipeline",
        "tabops.training.calibration.ProbabilityCalibrator",
    }
)


def dump_model(model: Pipeline | CalibratedPipeline) -> bytes:
    """Serialise a fitted model with skops (no pickle).

    Raises:
        ArtifactIntegrityError: the model holds a type the loader would refuse.
    """
    data = bytes(skops_io.dumps(model))
    refused = sorted(set(skops_io.get_untrusted_types(data=data)) - TRUSTED_TYPES)
    if refused:
        raise ArtifactIntegrityError(f"model holds types outside the allow-list: {refused}")
    return data


def load_model(data: bytes) -> Pipeline | CalibratedPipeline:
    """Load a skops model, trusting only the types on our allow-list.

    Raises:
        ArtifactIntegrityError: the file holds a type that is not on the allow-list.
    """
    untrusted = set(skops_io.get_untrusted_types(data=data))
    refused = sorted(untrusted - TRUSTED_TYPES)
    if refused:
        raise ArtifactIntegrityError(f"model file holds untrusted types: {', '.join(refused)}")
    model = skops_io.loads(data, trusted=sorted(untrusted))
    if not isinstance(model, Pipeline | CalibratedPipeline):
        raise ArtifactIntegrityError("model file does not hold a scikit-learn Pipeline")
    return model


def frame_to_parquet(frame: pd.DataFrame) -> bytes:
    """A frame as Parquet bytes (pyarrow)."""
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def parquet_to_frame(data: bytes) -> pd.DataFrame:
    """Parquet bytes as a frame."""
    return pd.read_parquet(io.BytesIO(data))
