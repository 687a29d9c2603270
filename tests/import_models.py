"""Models trained "elsewhere" for the import tests: fitted on real data, saved as users do."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import cloudpickle
import joblib
import numpy as np
import pandas as pd
import sklearn
import yaml
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from conftest import DATASETS, HEART_CSV

KUESKI_CSV = DATASETS / "kueski_features_by_client.csv.gz"
TARGET = "status"
NUMBERS = ["nb_previous_loans", "avg_amount_loans_previous", "age", "years_on_the_job"]
CATEGORIES = ["flag_own_car"]
# The raw Kueski loans file wrote the car flag as Y/N; the per-client table holds it as 0/1.
CAR_FLAGS = {0: "N", 1: "Y"}
SAMPLE_ROWS = 10_000
# The heart-failure example, ``sex`` as words: the pipeline one-hot encodes a text column.
HEART_NUMBERS = ["age", "ejection_fraction", "serum_creatinine", "serum_sodium"]
HEART_TEXT = ["sex"]
HEART_TARGET = "DEATH_EVENT"
HEART_FEATURES = HEART_NUMBERS + HEART_TEXT


def read_kueski() -> pd.DataFrame:
    """The per-client credit table: 36,457 rows, gaps in two number columns."""
    return pd.read_csv(KUESKI_CSV)


def split_kueski(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training rows and a 10,000-row sample the model never saw (the rows are in id order)."""
    shuffled = frame.sample(frac=1.0, random_state=7).reset_index(drop=True)
    return shuffled.iloc[SAMPLE_ROWS:], shuffled.iloc[:SAMPLE_ROWS]


def gradient_boosting_pipeline(train: pd.DataFrame) -> Pipeline:
    """One-hot categories and scaled, imputed numbers into gradient boosting."""
    numbers = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    prepare = ColumnTransformer(
        [
            ("numbers", numbers, NUMBERS),
            ("categories", OneHotEncoder(handle_unknown="ignore"), CATEGORIES),
        ]
    )
    model = GradientBoostingClassifier(n_estimators=40, max_depth=3, random_state=0)
    pipeline = Pipeline([("prepare", prepare), ("classify", model)])
    return pipeline.fit(train[NUMBERS + CATEGORIES], train[TARGET])


def with_car_letters(frame: pd.DataFrame) -> pd.DataFrame:
    """The table with the car flag as text (Y/N), as the raw loans file had it."""
    return frame.assign(flag_own_car=frame["flag_own_car"].map(CAR_FLAGS))


def logistic_pipeline(train: pd.DataFrame) -> Pipeline:
    """Scaled gap-free numbers and a one-hot text flag into logistic regression."""
    prepare = ColumnTransformer(
        [
            ("numbers", StandardScaler(), ["nb_previous_loans", "age"]),
            ("categories", OneHotEncoder(handle_unknown="ignore"), CATEGORIES),
        ]
    )
    pipeline = Pipeline([("prepare", prepare), ("classify", LogisticRegression(max_iter=500))])
    return pipeline.fit(train[["nb_previous_loans", "age", *CATEGORIES]], train[TARGET])


def numpy_logistic(train: pd.DataFrame, columns: list[str]) -> LogisticRegression:
    """A bare classifier fitted on a numpy matrix: it records no column names."""
    return LogisticRegression(max_iter=500).fit(train[columns].to_numpy(), train[TARGET])


def heart_frame() -> pd.DataFrame:
    """The heart-failure example's rows, ``sex`` as words (female, male)."""
    frame = pd.read_csv(HEART_CSV)[[*HEART_FEATURES, HEART_TARGET]]
    frame["sex"] = frame["sex"].map({0: "female", 1: "male"})
    return frame


def heart_pipeline(frame: pd.DataFrame, c: float = 1.0) -> Pipeline:
    """Scaled numbers and one-hot ``sex`` into logistic regression (``C=c``), fitted."""
    columns = ColumnTransformer(
        [("numbers", StandardScaler(), HEART_NUMBERS), ("text", OneHotEncoder(), HEART_TEXT)]
    )
    model = Pipeline([("columns", columns), ("classifier", LogisticRegression(C=c))])
    return model.fit(frame[HEART_FEATURES], frame[HEART_TARGET])


class Hostile:
    """Unpickling it runs a shell command that leaves a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return os.system, (f"touch {self.marker}",)


def three_class_model() -> LogisticRegression:
    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    y = np.digitize(x["a"], [-0.5, 0.5])
    return LogisticRegression().fit(x, y)


def save_joblib(model: object, path: Path) -> Path:
    joblib.dump(model, path)
    return path


def save_pickle(model: object, path: Path) -> Path:
    path.write_bytes(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))
    return path


def write_mlflow_folder(
    model: object,
    folder: Path,
    inputs: list[dict[str, str]] | None,
    run_id: str = "4f1c2a7be5d64c0c9a3f2e1d0b9c8a7f",
) -> Path:
    """A model folder as ``mlflow.sklearn.save_model`` writes it (cloudpickle format).

    ``inputs`` are the signature's column specs (``{"type": "double", "name": "age"}``);
    MLflow stores the list as one JSON string under ``signature.inputs``.
    """
    folder.mkdir(parents=True)
    with (folder / "model.pkl").open("wb") as file:
        cloudpickle.dump(model, file)
    python = "3.11.9"
    requirements = [f"scikit-learn=={sklearn.__version__}", "cloudpickle"]
    (folder / "requirements.txt").write_text("\n".join(["mlflow==2.16.2", *requirements]) + "\n")
    (folder / "python_env.yaml").write_text(
        yaml.safe_dump({"python": python, "dependencies": ["-r requirements.txt"]})
    )
    (folder / "conda.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "mlflow-env",
                "channels": ["conda-forge"],
                "dependencies": [f"python={python}", "pip", {"pip": requirements}],
            }
        )
    )
    document: dict[str, object] = {
        "artifact_path": "model",
        "flavors": {
            "python_function": {
                "env": {"conda": "conda.yaml", "virtualenv": "python_env.yaml"},
                "loader_module": "mlflow.sklearn",
                "model_path": "model.pkl",
                "predict_fn": "predict",
                "python_version": python,
            },
            "sklearn": {
                "code": None,
                "pickled_model": "model.pkl",
                "serialization_format": "cloudpickle",
                "sklearn_version": sklearn.__version__,
            },
        },
        "mlflow_version": "2.16.2",
        "model_size_bytes": (folder / "model.pkl").stat().st_size,
        "model_uuid": "0d5a8f1e3c2b4a6d9e7f8a1b2c3d4e5f",
        "run_id": run_id,
        "utc_time_created": "2025-03-04 10:21:07.123456",
    }
    if inputs is not None:
        document["signature"] = {
            "inputs": json.dumps([{**column, "required": True} for column in inputs]),
            "outputs": json.dumps([{"type": "long", "required": True}]),
            "params": None,
        }
    (folder / "MLmodel").write_text(yaml.safe_dump(document, sort_keys=False))
    return folder
