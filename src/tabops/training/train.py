"""Training a project: honest split, candidate search under CV, calibration, threshold, metrics."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.metrics import brier_score_loss

from tabops.errors import TrainingError
from tabops.model.calibration import CalibratedPipeline, ProbabilityCalibrator
from tabops.model.reference_stats import ReferenceStats, build_reference_stats
from tabops.project import Project
from tabops.schema import coerce_frame
from tabops.training.budget import RunClock
from tabops.training.candidates import (
    BASE_CANDIDATES,
    SEARCH_SPACES,
    VOTING_MEMBERS,
    imputation_strategies,
    strip_resampling,
)
from tabops.training.evaluate import EvaluationReport, GateResult, check_gates, evaluate_model
from tabops.training.guards import GuardFinding, check_data_quality
from tabops.training.importance import compute_permutation_importance
from tabops.training.leaks import (
    apply_leak_action,
    exclude_columns,
    find_dominant_feature,
    find_near_copies,
)
from tabops.training.search import CandidateScore, CandidateSearch, ProgressCallback
from tabops.training.splits import RowSplit, prepare_rows, split_rows
from tabops.training.threshold import (
    OperatingPoint,
    ThresholdChoice,
    choose_threshold,
    evaluate_operating_points,
    explain_missed_positives,
    operating_points,
)

_REFERENCE_ROWS = 1_000
# Isotonic regression is a step function: fit on few positives it overfits and its ties
# erase the ranking (seen on the device-failure data), so auto mode needs this many.
_ISOTONIC_MINORITY = 200
# Of the time cap, this share is kept back from the search for the fits and evaluation after it.
_AFTER_SEARCH_SHARE = 0.2
# A fit on more rows than the search's folds is estimated from their time, times this margin
# for work that grows faster than the rows (sorting).
_FIT_MARGIN = 1.5


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
    stage_seconds: dict[str, float]
    stage_peak_rss_mb: dict[str, float]
    search_rows: int
    negative_class: object
    positive_class: object
    y_test: np.ndarray = field(repr=False)
    p_test: np.ndarray = field(repr=False)
    golden: pd.DataFrame = field(repr=False)
    reference: pd.DataFrame = field(repr=False)
    # The project as trained: columns the leak guards left out are excluded in its schema.
    project: Project = field(repr=False)
    # Chosen on the validation rows, then measured again on the test rows.
    operating_points: list[OperatingPoint] = field(default_factory=list)
    test_operating_points: list[OperatingPoint] = field(default_factory=list)
    # Notes (also in ``notes``) that the threshold catches no positive of some rows.
    threshold_warnings: list[str] = field(default_factory=list)
    # Drift's reference: every training row's features, the test rows' scores.
    reference_stats: ReferenceStats | None = field(default=None, repr=False)

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
    settings = project.train
    clock = RunClock(settings.time_budget_s)
    spec = project.schema_
    frame, notes = prepare_rows(frame, project)
    y, negative, positive = encode_target(frame, project)
    split = split_rows(frame, y, project)
    train_rows = frame.iloc[split.train]
    guards = check_data_quality(train_rows, spec, project.target, y[split.train], project.entity)
    guards += find_near_copies(train_rows, spec, project.target)
    errors = [finding.message for finding in guards if finding.severity == "error"]
    if errors:
        raise TrainingError("; ".join(errors))
    left_out = apply_leak_action(guards, settings.leak_action)
    if left_out:
        project = exclude_columns(project, left_out)
        spec = project.schema_
        notes.extend(
            f"column {name!r} left out of training ({why})" for name, why in left_out.items()
        )
    features = coerce_frame(frame, spec)
    dominant = find_dominant_feature(
        features.iloc[split.train], y[split.train], spec, settings.seed
    )
    guards += [dominant] if dominant is not None else []
    clock.lap("prepare and guards")
    x_train, y_train = features.iloc[split.train], y[split.train]
    groups = frame[project.entity].to_numpy()[split.train] if project.entity else None
    reserve = settings.time_budget_s * _AFTER_SEARCH_SHARE
    search = CandidateSearch(project, x_train, y_train, groups, report, clock, reserve)
    leaderboard = _search_candidates(search, settings.candidates)
    best = leaderboard[0]
    notes.extend(_describe_search(search, settings.time_budget_s))
    clock.lap("search")

    pipeline, fit_rows = _fit_chosen(search, best, x_train, y_train, clock, notes)
    report(f"fitted {best.name} on {fit_rows} rows", 1)
    clock.lap("fit")

    x_validation, y_validation = features.iloc[split.validation], y[split.validation]
    # The calibrator learns from the search's out-of-fold predictions, on the search rows.
    model, calibration = _calibrate(pipeline, best, search.y, x_validation, y_validation, project)
    report(f"calibration: {calibration['method'] if calibration['kept'] else 'none kept'}", 1)

    validation_probability = model.predict_proba(x_validation)[:, 1]
    threshold = choose_threshold(y_validation, validation_probability, settings.threshold)
    points = operating_points(y_validation, validation_probability)
    validation = evaluate_model(y_validation, validation_probability, threshold.threshold)
    clock.lap("calibrate and threshold")
    if settings.refit if settings.refit is not None else not search.is_sampled:
        refit_rows = len(split.train) + len(split.validation)
        if clock.allows(_fit_estimate(search, best, refit_rows)):
            model = _refit(search.build(best, refit_rows), model, features, y, split)
            report(f"refitted {best.name} on {refit_rows} rows", 0)
        else:
            clock.skip(f"the refit on {refit_rows} train and validation rows")
        clock.lap("refit")
    x_test, y_test = features.iloc[split.test], y[split.test]
    test_probability = model.predict_proba(x_test)[:, 1]
    test = evaluate_model(
        y_test,
        test_probability,
        threshold.threshold,
        resamples=settings.bootstrap_resamples,
        seed=settings.seed,
    )
    test_points = evaluate_operating_points(points, y_test, test_probability)
    threshold_warnings = explain_missed_positives({"validation": validation, "test": test})
    notes.extend(threshold_warnings)
    report(f"evaluated on {len(split.test)} held-out rows", 1)
    clock.lap("evaluate")
    importance = compute_permutation_importance(model, x_test, y_test, settings.seed)
    report("permutation importance", 1)
    clock.lap("importance")

    golden_rows = np.concatenate([split.test, split.validation])[: settings.golden_rows]
    golden = frame.iloc[golden_rows][spec.feature_names].reset_index(drop=True)
    golden["__probability__"] = model.predict_proba(features.iloc[golden_rows])[:, 1]
    reference = frame.iloc[split.train[:_REFERENCE_ROWS]][[*spec.feature_names, project.target]]
    sets = {"train": split.train, "validation": split.validation, "test": split.test}
    row_counts = {"total": len(frame)} | {name: len(rows) for name, rows in sets.items()}
    clock.lap("golden rows")
    stats = build_reference_stats(
        x_train,
        spec,
        test_probability,
        threshold=threshold.threshold,
        metrics=test.metrics,
        intervals={name: list(bounds) for name, bounds in test.intervals.items()},
        split_rows=row_counts,
    )
    clock.lap("reference statistics")
    notes.extend(_describe_skipped(clock))
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
        rows=row_counts,
        positives={name: int(y[rows].sum()) for name, rows in sets.items()},
        training_seconds=clock.elapsed,
        stage_seconds=dict(clock.stage_seconds),
        stage_peak_rss_mb=dict(clock.stage_peak_rss_mb),
        search_rows=len(search.rows),
        negative_class=negative,
        positive_class=positive,
        y_test=y_test,
        p_test=test_probability,
        golden=golden,
        reference=reference.reset_index(drop=True),
        project=project,
        operating_points=points,
        test_operating_points=test_points,
        threshold_warnings=threshold_warnings,
        reference_stats=stats,
    )


def _search_candidates(search: CandidateSearch, names: Sequence[str]) -> list[CandidateScore]:
    """Every candidate's best setting, best first; voting averages the best others."""
    scores = [search.run(name, SEARCH_SPACES[name]) for name in names if name != "voting"]
    leaderboard = [score for score in scores if score is not None]
    if "voting" in names:
        ranked = sorted(leaderboard, key=lambda score: score.pr_auc_mean, reverse=True)
        members = [score for score in ranked if score.name in BASE_CANDIDATES]
        if len(members) >= 2:
            leaderboard.append(search.combine("voting", members[:VOTING_MEMBERS]))
    leaderboard.sort(key=lambda score: score.pr_auc_mean, reverse=True)
    return leaderboard


def _describe_search(search: CandidateSearch, budget: float) -> list[str]:
    """Notes on how the search ran: on a sample, cut short or skipping candidates."""
    notes = []
    if search.is_sampled:
        notes.append(
            f"settings were searched on a stratified sample of {len(search.rows)} of the "
            f"{search.training_rows} training rows (train.search_rows); the chosen setting "
            "was then fit on all of them"
        )
    if search.cut or search.skipped:
        parts = [f"{cut.name} {cut.tried} of {cut.planned} settings" for cut in search.cut]
        parts += [f"{name} not tried" for name in search.skipped]
        notes.append(
            f"the search reached its time cap (train.time_budget_s = {budget:g} s) and did "
            f"less than planned ({', '.join(parts)}): on a quieter or faster machine the same "
            "project may choose another setting; raise the cap, or set train.search_settings "
            "or train.search_rows lower"
        )
    return notes


def _describe_skipped(clock: RunClock) -> list[str]:
    return [
        f"{what} did not start: its estimated time would overrun the time cap "
        f"(train.time_budget_s = {clock.budget_seconds:g} s)"
        for what in clock.skipped
    ]


def _fit_estimate(search: CandidateSearch, best: CandidateScore, rows: int) -> float:
    """Seconds a fit of the chosen setting on ``rows`` rows should take, from the search."""
    per_fold = search.setting_seconds.get(best.name, best.fit_seconds * len(search.folds))
    per_fold /= len(search.folds)
    return per_fold * max(rows / max(search.fold_rows, 1), 1.0) * _FIT_MARGIN


def _fit_chosen(
    search: CandidateSearch,
    best: CandidateScore,
    x_train: pd.DataFrame,
    y_train: np.ndarray,
    clock: RunClock,
    notes: list[str],
) -> tuple[Any, int]:
    """The chosen setting fit on every training row, or on the search rows near the cap."""
    rows = len(y_train)
    if search.is_sampled and not clock.allows(_fit_estimate(search, best, rows)):
        clock.skip(f"the fit on all {rows} training rows")
        notes.append(f"the chosen setting was fit on the {len(search.rows)} search rows only")
        x_train, y_train, rows = search.x, search.y, len(search.rows)
    fitted = search.build(best, rows).fit(x_train, y_train)
    return strip_resampling(fitted), rows


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
