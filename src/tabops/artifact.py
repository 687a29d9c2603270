"""Turning a training result into a registry version's files and manifest, and back."""

from __future__ import annotations

import io
import platform
import subprocess
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import pandas as pd
import skops.io as skops_io
from sklearn.pipeline import Pipeline

from tabops import __version__
from tabops.errors import ArtifactIntegrityError
from tabops.project import Project
from tabops.schema import python_value
from tabops.training.train import TrainingResult

MODEL_FILE = "model.skops"
GOLDEN_FILE = "golden.parquet"
REFERENCE_FILE = "reference.parquet"
GOLDEN_PROBABILITY = "__probability__"
GOLDEN_TOLERANCE = 1e-6

# Types skops does not trust by default but which our own candidates contain. Anything
# else found in a model file is refused: loading it could run code.
TRUSTED_TYPES = frozenset(
    {
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "numpy.dtype",
    }
)
_LIBRARIES = ("scikit-learn", "numpy", "pandas", "scipy", "skops", "pyarrow")


def dump_model(pipeline: Pipeline) -> bytes:
    """Serialise a fitted pipeline with skops (no pickle)."""
    return bytes(skops_io.dumps(pipeline))


def load_model(data: bytes) -> Pipeline:
    """Load a skops model, trusting only the types on our allow-list.

    Raises:
        ArtifactIntegrityError: the file holds a type that is not on the allow-list.
    """
    untrusted = set(skops_io.get_untrusted_types(data=data))
    refused = sorted(untrusted - TRUSTED_TYPES)
    if refused:
        raise ArtifactIntegrityError(f"model file holds untrusted types: {', '.join(refused)}")
    model = skops_io.loads(data, trusted=sorted(untrusted))
    if not isinstance(model, Pipeline):
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


def library_versions() -> dict[str, str]:
    """Versions of Python, tabops and the libraries a model depends on."""
    versions = {"python": platform.python_version(), "tabops": __version__}
    for name in _LIBRARIES:
        try:
            versions[name] = package_version(name)
        except PackageNotFoundError:
            continue
    return versions


def git_commit(folder: Path) -> str | None:
    """The commit checked out in ``folder``, when it is inside a git work tree."""
    try:
        completed = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return completed.stdout.strip() or None if completed.returncode == 0 else None


def package_version_files(
    project: Project,
    result: TrainingResult,
    data_path: Path,
    data_fingerprint: str,
) -> tuple[dict[str, bytes], dict[str, Any]]:
    """The files and manifest of a registry version built from a training result."""
    files = {
        MODEL_FILE: dump_model(result.pipeline),
        GOLDEN_FILE: frame_to_parquet(result.golden),
        REFERENCE_FILE: frame_to_parquet(result.reference),
    }
    negative, positive = python_value(result.negative_class), python_value(result.positive_class)
    manifest: dict[str, Any] = {
        "project": project.name,
        "task": "binary_classification",
        "target": project.target,
        "classes": {
            "negative": {"value": negative, "name": project.class_names.get(str(negative))},
            "positive": {"value": positive, "name": project.class_names.get(str(positive))},
        },
        "threshold": result.threshold,
        "threshold_policy": "max_f1 on validation rows",
        "candidate": result.candidate,
        "metrics": result.test.metrics,
        "validation_metrics": result.validation.metrics,
        "confusion": result.test.confusion,
        "leaderboard": [vars(score) for score in result.leaderboard],
        "gates": [gate.model_dump() for gate in result.gates],
        "feature_spec": project.schema_.model_dump(mode="json"),
        "data": {
            "path": data_path.name,
            "sha256": data_fingerprint,
            "rows": result.rows,
        },
        "training_seconds": round(result.training_seconds, 3),
        "golden": {"rows": len(result.golden), "tolerance": GOLDEN_TOLERANCE},
        "library_versions": library_versions(),
        "git_commit": git_commit(data_path.parent),
    }
    return files, manifest
