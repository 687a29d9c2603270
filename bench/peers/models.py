"""The benchmark's models: a synthetic table, trained through tabops, exported for the peers.

The table has 30 numeric features ``f00``..``f29`` and about 2% positives, a few columns
scaled up so feature ranges are wide. Each model is a tabops project trained with
``tabops train`` into a private ``TABOPS_HOME``, so tabops serves exactly what it registered.

tabops' pipeline starts with its own ``FeatureEncoder``, which the peers cannot import.
They get the same fitted steps behind a stock scikit-learn column selector instead
(``peer.pkl``), or with no first step for positional arrays (``tensor.pkl``); both are
checked to give the stored pipeline's probabilities on every row before anything is
measured. (tabops itself may score with an ONNX compilation of the pipeline, which it
keeps within 1e-5 of scikit-learn; the benchmark reports the difference it sees.)
"""

from __future__ import annotations

import os
import pickle
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_classification
from sklearn.pipeline import Pipeline

from peers.processes import last_line, run_logged
from tabops.model.predictor import Predictor
from tabops.registry.local import LocalArtifactStore
from tabops.registry.versions import ModelRegistry

FEATURES = [f"f{index:02d}" for index in range(30)]
TARGET = "target"
ROWS = 20_000
SCORED_ROWS = 10_000
CANDIDATES = {"lr": "logistic_regression", "hgb": "hist_gradient_boosting"}
WIDE_COLUMNS = {"f00": 1e3, "f01": 1e4, "f02": 1e5}
TRAIN_SETTINGS = {
    "cv_folds": 2,
    "time_budget_s": 30,
    "calibration": "none",
    "bootstrap_resamples": 0,
}
_SAME_PROBABILITY = 1e-9


class ModelSetupError(RuntimeError):
    """Training or exporting a benchmark model failed."""


@dataclass(frozen=True)
class BenchModel:
    """One trained model, as tabops serves it and as the peers load it."""

    key: str
    name: str
    predictor: Predictor
    peer_pipeline: Path
    tensor_pipeline: Path
    records: list[dict[str, float]]
    probabilities: np.ndarray  # scikit-learn's, of the stored pipeline, for ``records``

    @property
    def threshold(self) -> float:
        """The decision threshold tabops chose at training."""
        return self.predictor.threshold


HEART_EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "heart-failure"
"""The bundled heart-failure example project."""


def make_table() -> pd.DataFrame:
    """The fixed synthetic table: features and a 0/1 target."""
    features, target = make_classification(
        n_samples=ROWS,
        n_features=len(FEATURES),
        n_informative=10,
        weights=[0.98],
        random_state=0,
    )
    table = pd.DataFrame(features, columns=FEATURES)
    for column, factor in WIDE_COLUMNS.items():
        table[column] *= factor
    table[TARGET] = target
    return table


def prepare_models(keys: list[str], work: Path, home: Path) -> list[BenchModel]:
    """Train every model through tabops and export its pipelines for the peers.

    Raises:
        ModelSetupError: a tabops command failed, or an export changed a probability.
    """
    table = make_table()
    data = work / "table.csv"
    table.to_csv(data, index=False)
    frame = table[FEATURES].head(SCORED_ROWS)
    records = frame.to_dict(orient="records")
    models = []
    for key in keys:
        name = f"bench-{key}"
        train_project(key, name, data, work / name, home)
        predictor = Predictor.load(ModelRegistry(LocalArtifactStore(home / "registry")), name)
        probabilities = predictor.pipeline.predict_proba(frame)[:, 1]
        peer, tensor = export_pipelines(predictor.pipeline, frame, probabilities, work / name)
        models.append(BenchModel(key, name, predictor, peer, tensor, records, probabilities))
    return models


def tabops_environment(home: Path) -> dict[str, str]:
    """This process's environment with ``TABOPS_HOME`` set and no other ``TABOPS_*`` setting."""
    kept = {key: value for key, value in os.environ.items() if not key.startswith("TABOPS_")}
    return {**kept, "TABOPS_HOME": str(home)}


def train_project(key: str, name: str, data: Path, folder: Path, home: Path) -> None:
    """``tabops init`` the table, keep one candidate and fast settings, ``tabops train`` it."""
    tabops = str(Path(sys.executable).parent / "tabops")
    project = folder / "tabops.yaml"
    log = folder / "train.log"
    env = {**tabops_environment(home), "NO_COLOR": "1"}
    init = [tabops, "init", str(data), "--target", TARGET, "--name", name, "-o", str(project)]
    if run_logged(init, log, env) != 0:
        raise ModelSetupError(f"tabops init failed for {name}: {last_line(log)}")
    document: dict[str, Any] = yaml.safe_load(project.read_text())
    document["train"] = {"candidates": [CANDIDATES[key]], **TRAIN_SETTINGS}
    document["gates"] = {}
    project.write_text(yaml.safe_dump(document, sort_keys=False))
    if run_logged([tabops, "train", "-p", str(project)], log, env) != 0:
        raise ModelSetupError(f"tabops train failed for {name}: {last_line(log)}")


def export_pipelines(
    pipeline: Any, frame: pd.DataFrame, expected: np.ndarray, folder: Path
) -> tuple[Path, Path]:
    """Pickle the peers' two pipelines after checking they give the ``expected`` probabilities."""
    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) < 2:
        raise ModelSetupError(f"expected a scikit-learn Pipeline, got {type(pipeline).__name__}")
    fitted = pipeline.steps[1:]
    if any(type(step).__module__.startswith("tabops") for _, step in fitted):
        raise ModelSetupError("tabops code past the pipeline's first step; peers cannot load it")
    select = ColumnTransformer([("features", "passthrough", FEATURES)])
    select.fit(frame)
    peer = Pipeline([("select", select), *fitted])
    tensor = Pipeline(fitted)
    _check_same(expected, peer.predict_proba(frame)[:, 1], "peer pipeline")
    _check_same(expected, tensor.predict_proba(frame.to_numpy())[:, 1], "tensor pipeline")
    paths = folder / "peer.pkl", folder / "tensor.pkl"
    for path, exported in zip(paths, (peer, tensor), strict=True):
        path.write_bytes(pickle.dumps(exported, protocol=pickle.HIGHEST_PROTOCOL))
    return paths


def _check_same(expected: np.ndarray, observed: np.ndarray, what: str) -> None:
    difference = float(np.max(np.abs(expected - observed)))
    if difference > _SAME_PROBABILITY:
        raise ModelSetupError(f"{what} differs from the stored one by up to {difference:.3g}")


def train_fast_example(work: Path) -> Path:
    """A home holding the heart-failure example trained as a logistic regression."""
    from tabops.config import Settings
    from tabops.project import PROJECT_FILE, load_project
    from tabops.registry import LocalArtifactStore, ModelRegistry
    from tabops.training.register import train_project

    project_dir = work / "project"
    shutil.copytree(HEART_EXAMPLE, project_dir)
    path = project_dir / PROJECT_FILE
    document = yaml.safe_load(path.read_text())
    document["train"].update(
        {"cv_folds": 3, "candidates": ["logistic_regression"], "search_settings": 1}
    )
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    home = work / "home"
    project, folder = load_project(project_dir)
    train_project(
        project, folder, ModelRegistry(LocalArtifactStore(Settings(home=home).registry_path))
    )
    return home
