"""Training a project: honest split, candidate search under CV, calibration, threshold, metrics."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.inspection import permutation_importance
from sklearn.metrics import brier_score_loss

from tabops.errors import TrainingError
from tabops.model.calibration import CalibratedPipeline, ProbabilityCalibrator
from tabops.project import Project
from tabops.schema import coerce_frame
from tabops.training.candidates import (
    BASE_CANDIDATES,
    SEARCH_SPACES,
    VOTING_MEMBERS,
    imputation_strategies,
    strip_resampling,
)
from tabops.training.evaluate import EvaluationReport, GateResult, check_gates, evaluate_model
from tabops.training.guards import GuardFinding, check_data_quality
from tabops.training.search import CandidateScore, CandidateSearch, ProgressCallback
from tabops.training.splits import RowSplit, prepare_rows, split_rows
from tabops.training.threshold import ThresholdChoice, choose_threshold

_REFERENCE_ROWS = 1_000
_IMPORTANCE_ROWS = 5_000
_IMPORTANCE_REPEATS = 5
# Isotonic regression is a step function: fit on few positives it overfits and its ties
# erase the ranking (seen on the device-failure data), so auto mode needs this many.
_ISOTONIC_MINORITY = 200
_SEARCH_SHARE = 0.8  # of the time budget; the rest is for fitting, calibrating, evaluating


@dataclass
class TrainingResult:
    """Everything training produced: the fitted model and the evidence for it."""

    model: Any
    candidate: CandidateScore
    leaderboard: list[CandidateScore]
    split: RowSplit
    notes: list[str]
    guards: list[GuardFinding]
    calibration: dict[str, Any]
    threshold: ThresholdChoice
    validation: EvaluationReport
    test: EvaluationReport
    gates: list[GateResult]
    importance: list[tuple[str, float, float]]
    imputation: dict[str, str]
    rows: dict[str, int]
    positives: dict[str, int]
    training_seconds: float
    negative_class: object
    positive_class: object
    y_test: np.ndarray = field(repr=False)
    p_test: np.ndarray = field(repr=False)
    golden: pd.DataFrame = field(repr=False)
    reference: pd.DataFrame = field(repr=False)

    @property
    def failed_gates(self) -> list[GateResult]:
        """The gates the model missed."""
        return [gate for gate in self.gates if not gate.passed]


def count_training_steps(project: Project) -> int:
    """How many steps ``train_model`` reports as done, for a progress bar's total."""
    return len(project.train.candidates) + 4


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
    """Train, select, calibrate and evaluate a classifier for the project.

    Rows are split (stratified, by time or by entity) into train, validation and test.
    Candidates are searched by k-fold CV on the train rows (resampling, if any, inside the
    folds only) and ranked by PR AUC; the best is fit on the train rows, calibrated on its
    out-of-fold predictions when that lowers the validation Brier score, given a threshold
    chosen on the validation rows, and measured once on the test rows.

    Raises:
        TrainingError: the data cannot support the split, CV or a guard found an error.
    """
    report = progress or (lambda _step, _done: None)
    started = time.perf_counter()
    settings = project.train
    spec = project.schema_
    frame, notes = prepare_rows(frame, project)
    y, negative, positive = encode_target(frame, project)
    split = split_rows(frame, y, project)
    guards = check_data_quality(
        frame.iloc[split.train], spec, project.target, y[split.train], project.entity
    )
    errors = [finding.message for finding in guards if finding.severity == "error"]
    if errors:
        raise TrainingError("; ".join(errors))
    features = coerce_frame(frame, spec)
    x_train, y_train = features.iloc[split.train], y[split.train]
    groups = frame[project.entity].to_numpy()[split.train] if project.entity else None
    deadline = started + settings.time_budget_s * _SEARCH_SHARE
    search = CandidateSearch(project, x_train, y_train, groups, report, deadline)
    leaderboard = [
        search.run(name, SEARCH_SPACES[name]) for name in settings.candidates if name != "voting"
    ]
    if "voting" in settings.candidates:
        ranked = sorted(leaderboard, key=lambda score: score.pr_auc_mean, reverse=True)
        members = [(s.name, s.params) for s in ranked if s.name in BASE_CANDIDATES]
        if len(members) >= 2:
            leaderboard.append(search.run("voting", [{}], members[:VOTING_MEMBERS]))
    leaderboard.sort(key=lambda score: score.pr_auc_mean, reverse=True)
    best = leaderboard[0]
    if search.cut:
        tried = ", ".join(f"{cut.name} {cut.tried} of {cut.planned}" for cut in search.cut)
        notes.append(
            f"the search reached its time cap (train.time_budget_s = {settings.time_budget_s:g} "
            f"s) and tried fewer settings than planned ({tried}): on a quieter or faster "
            "machine the same project may choose another setting; raise the cap, or set "
            "train.search_settings lower"
        )

    fitted = search.build(best).fit(x_train, y_train)
    pipeline = strip_resampling(fitted)
    report(f"fitted {best.name} on {len(split.train)} rows", 1)

    x_validation, y_validation = features.iloc[split.validation], y[split.validation]
    model, calibration = _calibrate(pipeline, best, y_train, x_validation, y_validation, project)
    report(f"calibration: {calibration['method'] if calibration['kept'] else 'none kept'}", 1)

    validation_probability = model.predict_proba(x_validation)[:, 1]
    threshold = choose_threshold(y_validation, validation_probability, settings.threshold)
    validation = evaluate_model(y_validation, validation_probability, threshold.threshold)
    if settings.refit:
        model = _refit(search.build(best), model, features, y, split)
        report(f"refitted {best.name} on {len(split.train) + len(split.validation)} rows", 0)
    x_test, y_test = features.iloc[split.test], y[split.test]
    test_probability = model.predict_proba(x_test)[:, 1]
    test = evaluate_model(
        y_test,
        test_probability,
        threshold.threshold,
        resamples=settings.bootstrap_resamples,
        seed=settings.seed,
    )
    report(f"evaluated on {len(split.test)} held-out rows", 1)
    importance = _importance(model, x_test, y_test, settings.seed)
    report("permutation importance", 1)

    golden_rows = np.concatenate([split.test, split.validation])[: settings.golden_rows]
    golden = frame.iloc[golden_rows][spec.feature_names].reset_index(drop=True)
    golden["__probability__"] = model.predict_proba(features.iloc[golden_rows])[:, 1]
    reference = frame.iloc[split.train[:_REFERENCE_ROWS]][[*spec.feature_names, project.target]]
    sets = {"train": split.train, "validation": split.validation, "test": split.test}
    return TrainingResult(
        model=model,
        candidate=best,
        leaderboard=leaderboard,
        split=split,
        notes=notes,
        guards=guards,
        calibration=calibration,
        threshold=threshold,
        validation=validation,
        test=test,
        gates=check_gates(project.parsed_gates(), test.metrics),
        importance=importance,
        imputation=imputation_strategies(spec),
        rows={"total": len(frame)} | {name: len(rows) for name, rows in sets.items()},
        positives={name: int(y[rows].sum()) for name, rows in sets.items()},
        training_seconds=time.perf_counter() - started,
        negative_class=negative,
        positive_class=positive,
        y_test=y_test,
        p_test=test_probability,
        golden=golden,
        reference=reference.reset_index(drop=True),
    )


def _calibrate(
    pipeline: Any,
    best: CandidateScore,
    y_train: np.ndarray,
    x_validation: pd.DataFrame,
    y_validation: np.ndarray,
    project: Project,
) -> tuple[Any, dict[str, Any]]:
    """Calibrate on out-of-fold training predictions; keep only a lower validation Brier."""
    raw = pipeline.predict_proba(x_validation)[:, 1]
    brier_before = float(brier_score_loss(y_validation, raw))
    outcome: dict[str, Any] = {
        "method": "none",
        "kept": False,
        "brier_before": brier_before,
        "brier_after": None,
    }
    choice = project.train.calibration
    if choice == "none":
        return pipeline, outcome
    methods: list[Literal["sigmoid", "isotonic"]] = ["sigmoid"]
    if choice == "isotonic" or (choice == "auto" and _minority(y_train) >= _ISOTONIC_MINORITY):
        methods.append("isotonic")
    if choice == "isotonic":
        methods = ["isotonic"]
    best_model, best_brier = pipeline, brier_before
    for method in methods:
        calibrator = ProbabilityCalibrator(method).fit(best.oof_probability, y_train)
        calibrated = CalibratedPipeline(pipeline, calibrator)
        brier = float(brier_score_loss(y_validation, calibrated.predict_proba(x_validation)[:, 1]))
        if outcome["brier_after"] is None or brier < outcome["brier_after"]:
            outcome.update(method=method, brier_after=brier)
        if brier < best_brier:
            best_model, best_brier = calibrated, brier
    outcome["kept"] = best_model is not pipeline
    return best_model, outcome


def _refit(
    template: Any, model: Any, features: pd.DataFrame, y: np.ndarray, split: RowSplit
) -> Any:
    """The same setting fit on train and validation rows, with the same calibrator if any.

    The threshold and calibrator were chosen before, on rows the refit now also learns
    from; the test rows stay unseen, so the held-out metrics remain honest.
    """
    rows = np.concatenate([split.train, split.validation])
    pipeline = strip_resampling(template.fit(features.iloc[rows], y[rows]))
    if isinstance(model, CalibratedPipeline):
        return CalibratedPipeline(pipeline, model.calibrator)
    return pipeline


def _minority(y: np.ndarray) -> int:
    return int(min(y.sum(), len(y) - y.sum()))


def _importance(
    model: Any, x_test: pd.DataFrame, y_test: np.ndarray, seed: int
) -> list[tuple[str, float, float]]:
    """Permutation importance (drop in PR AUC) on held-out rows, all positives kept."""
    if len(np.unique(y_test)) < 2:
        return []
    rows = np.arange(len(y_test))
    if len(rows) > _IMPORTANCE_ROWS:
        positives = rows[y_test == 1]
        negatives = np.random.default_rng(seed).choice(
            rows[y_test == 0], size=max(_IMPORTANCE_ROWS - len(positives), 1), replace=False
        )
        rows = np.sort(np.concatenate([positives, negatives]))
    result = permutation_importance(
        model,
        x_test.iloc[rows],
        y_test[rows],
        scoring="average_precision",
        n_repeats=_IMPORTANCE_REPEATS,
        random_state=seed,
    )
    return [
        (str(name), float(mean), float(std))
        for name, mean, std in zip(
            x_test.columns, result.importances_mean, result.importances_std, strict=True
        )
    ]
