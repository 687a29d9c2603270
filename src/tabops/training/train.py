"""Fitting candidates under stratified cross-validation and picking the best by PR AUC."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from tabops.errors import TrainingError
from tabops.project import Project
from tabops.schema import FeatureSpec, Kind, coerce_frame
from tabops.training.evaluate import (
    EvaluationReport,
    GateResult,
    check_gates,
    choose_threshold,
    evaluate_model,
)

ProgressCallback = Callable[[str], None]
"""Called once per unit of work with a short description of the step just done."""

_REFERENCE_ROWS = 1_000


@dataclass
class CandidateScore:
    """Cross-validated scores of one candidate on the training rows."""

    name: str
    pr_auc_mean: float
    pr_auc_std: float
    roc_auc_mean: float
    roc_auc_std: float
    fit_seconds: float


@dataclass
class TrainingResult:
    """Everything training produced: the fitted pipeline and the evidence for it."""

    pipeline: Pipeline
    candidate: str
    leaderboard: list[CandidateScore]
    threshold: float
    validation: EvaluationReport
    test: EvaluationReport
    gates: list[GateResult]
    rows: dict[str, int]
    training_seconds: float
    negative_class: object
    positive_class: object
    golden: pd.DataFrame = field(repr=False)
    reference: pd.DataFrame = field(repr=False)

    @property
    def failed_gates(self) -> list[GateResult]:
        """The gates the model missed."""
        return [gate for gate in self.gates if not gate.passed]


def count_training_steps(project: Project) -> int:
    """How many progress callbacks ``train_model`` makes, for a progress bar's total."""
    return len(project.train.candidates) * project.train.cv_folds + 3


def build_preprocessor(spec: FeatureSpec, *, scale: bool) -> ColumnTransformer:
    """Imputation (learned on training rows), optional scaling and one-hot encoding."""
    numeric = [c.name for c in spec.features if c.kind is not Kind.CATEGORICAL]
    categorical = [c.name for c in spec.features if c.kind is Kind.CATEGORICAL]
    numeric_steps: list[tuple[str, object]] = [("impute", SimpleImputer(strategy="median"))]
    if scale:
        numeric_steps.append(("scale", StandardScaler()))
    transformers: list[tuple[str, object, list[str]]] = []
    if numeric:
        transformers.append(("numeric", Pipeline(numeric_steps), numeric))
    if categorical:
        categorical_steps = Pipeline(
            [
                ("impute", SimpleImputer(strategy="most_frequent")),
                ("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
            ]
        )
        transformers.append(("categorical", categorical_steps, categorical))
    return ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)


def build_candidate(name: str, spec: FeatureSpec, seed: int) -> Pipeline:
    """A fresh, unfitted pipeline for a named candidate; classes weighted for balance."""
    if name == "logistic_regression":
        model: object = LogisticRegression(max_iter=5_000, class_weight="balanced")
        return Pipeline([("prepare", build_preprocessor(spec, scale=True)), ("model", model)])
    if name == "hist_gradient_boosting":
        model = HistGradientBoostingClassifier(class_weight="balanced", random_state=seed)
        return Pipeline([("prepare", build_preprocessor(spec, scale=False)), ("model", model)])
    raise TrainingError(f"unknown candidate {name!r}")


def encode_target(frame: pd.DataFrame, project: Project) -> tuple[np.ndarray, object, object]:
    """The target as 0/1 with 1 = positive class, plus the raw negative and positive values.

    Raises:
        TrainingError: the positive class is absent or the target is not binary.
    """
    values = frame[project.target]
    classes = list(pd.unique(values.dropna()))
    positive = [value for value in classes if str(value) == str(project.positive_class)]
    if len(classes) != 2 or not positive:
        raise TrainingError(
            f"target {project.target!r} must hold two classes including the positive class "
            f"{project.positive_class!r}; found {classes}"
        )
    negative = next(value for value in classes if str(value) != str(project.positive_class))
    y = (values.astype(str) == str(project.positive_class)).to_numpy(dtype=int)
    return y, _plain(negative), _plain(positive[0])


def _plain(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value


def train_model(
    project: Project, frame: pd.DataFrame, progress: ProgressCallback | None = None
) -> TrainingResult:
    """Split, compare candidates by cross-validated PR AUC, tune the threshold, evaluate.

    Rows are split (stratified) into train, validation and test. Candidates are compared
    by stratified k-fold CV on the train rows; the best is fit on the train rows, its
    threshold chosen on the validation rows (max F1), and its metrics measured on the test
    rows, which nothing else has seen.

    Raises:
        TrainingError: too few rows or positives to split and cross-validate.
    """
    report = progress or (lambda _step: None)
    started = time.perf_counter()
    spec = project.schema_
    frame = frame[frame[project.target].notna()].reset_index(drop=True)
    y, negative, positive = encode_target(frame, project)
    settings = project.train
    minority = int(min(y.sum(), len(y) - y.sum()))
    if minority < settings.cv_folds * 2 + 2:
        raise TrainingError(
            f"only {minority} rows of the rarer class: too few to split and run "
            f"{settings.cv_folds}-fold cross-validation"
        )
    features = coerce_frame(frame, spec)
    indices = np.arange(len(frame))
    rest, test_index = train_test_split(
        indices, test_size=settings.test_size, stratify=y, random_state=settings.seed
    )
    validation_share = settings.validation_size / (1 - settings.test_size)
    train_index, validation_index = train_test_split(
        rest, test_size=validation_share, stratify=y[rest], random_state=settings.seed
    )
    x_train, y_train = features.iloc[train_index], y[train_index]

    leaderboard = [
        _cross_validate(name, spec, x_train, y_train, settings.cv_folds, settings.seed, report)
        for name in settings.candidates
    ]
    leaderboard.sort(key=lambda score: score.pr_auc_mean, reverse=True)
    best = leaderboard[0].name

    pipeline = build_candidate(best, spec, settings.seed).fit(x_train, y_train)
    report(f"fitted {best} on {len(train_index)} rows")
    validation_probability = pipeline.predict_proba(features.iloc[validation_index])[:, 1]
    threshold = choose_threshold(y[validation_index], validation_probability)
    validation = evaluate_model(y[validation_index], validation_probability, threshold)
    report(f"threshold {threshold:.3f} chosen on {len(validation_index)} validation rows")
    test_probability = pipeline.predict_proba(features.iloc[test_index])[:, 1]
    test = evaluate_model(y[test_index], test_probability, threshold)
    gates = check_gates(project.parsed_gates(), test.metrics)
    report(f"evaluated on {len(test_index)} held-out rows")

    golden_index = np.concatenate([test_index, validation_index])[: settings.golden_rows]
    golden = frame.iloc[golden_index][spec.feature_names].reset_index(drop=True)
    golden["__probability__"] = pipeline.predict_proba(features.iloc[golden_index])[:, 1]
    reference_index = train_index[:_REFERENCE_ROWS]
    reference = frame.iloc[reference_index][[*spec.feature_names, project.target]]
    return TrainingResult(
        pipeline=pipeline,
        candidate=best,
        leaderboard=leaderboard,
        threshold=threshold,
        validation=validation,
        test=test,
        gates=gates,
        rows={
            "total": len(frame),
            "train": len(train_index),
            "validation": len(validation_index),
            "test": len(test_index),
        },
        training_seconds=time.perf_counter() - started,
        negative_class=negative,
        positive_class=positive,
        golden=golden,
        reference=reference.reset_index(drop=True),
    )


def _cross_validate(
    name: str,
    spec: FeatureSpec,
    x: pd.DataFrame,
    y: np.ndarray,
    folds: int,
    seed: int,
    report: ProgressCallback,
) -> CandidateScore:
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    pr_auc, roc_auc = [], []
    started = time.perf_counter()
    for fold, (fit_rows, score_rows) in enumerate(splitter.split(x, y), start=1):
        model = clone(build_candidate(name, spec, seed)).fit(x.iloc[fit_rows], y[fit_rows])
        probability = model.predict_proba(x.iloc[score_rows])[:, 1]
        pr_auc.append(average_precision_score(y[score_rows], probability))
        roc_auc.append(roc_auc_score(y[score_rows], probability))
        report(f"{name}: fold {fold}/{folds}")
    return CandidateScore(
        name=name,
        pr_auc_mean=float(np.mean(pr_auc)),
        pr_auc_std=float(np.std(pr_auc)),
        roc_auc_mean=float(np.mean(roc_auc)),
        roc_auc_std=float(np.std(roc_auc)),
        fit_seconds=(time.perf_counter() - started) / folds,
    )
