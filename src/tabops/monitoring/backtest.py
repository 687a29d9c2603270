"""Backtests by period: score each calendar period of a project's table and check its gates.

A backtest answers "would this model have held up, month after month?". The table is read
once and its rows are grouped by the calendar period (UTC) of the project's timestamp. Either a
model is trained on the first periods exactly as ``tabops train`` trains (but not registered),
or a registered version is loaded; then every later period (every period, for a version) is
scored, measured with the training metrics at the model's threshold, and held to the project's
gates. Periods are row positions into the one table, never copies of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, computed_field

from tabops.errors import DataError, Problem, ProjectError
from tabops.model.predictor import Predictor
from tabops.monitoring.periods import PeriodLength, PeriodRows, split_periods
from tabops.project import Gate, Project, read_project_table, resolve_data_path
from tabops.registry.versions import ModelRegistry, parse_model_ref
from tabops.schema import FeatureSpec, coerce_frame
from tabops.training.evaluate import evaluate_model
from tabops.training.train import count_training_steps, train_model
from tabops.validation import validate_frame

BacktestProgress = Callable[[str, float, int], None]
"""Called with (what was done, steps it counts for, total steps) as a backtest advances."""

# Metrics without meaning when a period lacks a class (or lacks positives).
_NEED_BOTH_CLASSES = ("roc_auc", "pr_auc", "mcc")
_NEED_POSITIVES = ("recall", "f1")


class PeriodGate(BaseModel):
    """One gate on one period: passed, failed, or undefined when its metric is."""

    gate: str
    metric: str
    observed: float | None
    status: Literal["passed", "failed", "undefined"]


class PeriodResult(BaseModel):
    """How the model did on one period's rows."""

    period: str
    start: datetime
    end: datetime
    rows: int
    positives: int
    in_training: bool
    metrics: dict[str, float | None]
    confusion: dict[str, int]
    gates: list[PeriodGate]

    @computed_field  # type: ignore[prop-decorator]  # pydantic's documented use on a property
    @property
    def status(self) -> Literal["passed", "failed", "undefined"]:
        """Failed when a gate failed; undefined when the period holds a single class."""
        if any(gate.status == "failed" for gate in self.gates):
            return "failed"
        if self.positives in (0, self.rows):
            return "undefined"
        return "passed"


class BacktestResult(BaseModel):
    """A whole backtest: what was scored, how, and every scored period."""

    model: str
    by: PeriodLength
    version: str | None
    threshold: float
    training_periods: list[str]
    training_rows: int
    gates: list[str]
    periods: list[PeriodResult]
    undated_rows: int
    unlabelled_rows: int

    @property
    def failed_periods(self) -> list[PeriodResult]:
        """The periods that missed at least one gate."""
        return [period for period in self.periods if period.status == "failed"]


def run_backtest(
    project: Project,
    project_dir: Path,
    by: PeriodLength,
    version: str | None = None,
    registry: ModelRegistry | None = None,
    train_periods: int = 1,
    progress: BacktestProgress | None = None,
) -> BacktestResult:
    """Score the project's table period by period and check the project's gates on each.

    Args:
        project: The project; it must name a timestamp column.
        project_dir: The folder its relative data path starts from.
        by: The period length.
        version: ``name@alias`` or ``name:N`` of a registered version to score every
            period with; None trains on the first ``train_periods`` periods instead.
        registry: Where ``version`` is registered (needed with a version).
        train_periods: Periods to train on when no version is given.
        progress: Told of each training step and each scored period.

    Raises:
        ProjectError: the project has no timestamp column.
        DataError: the table cannot be read, breaks the feature spec, lacks the timestamp
            column, or has too few periods to train on and score.
        TrainingError: training on the first periods failed.
        RegistryError: the version cannot be found or loaded.
    """
    if project.timestamp is None:
        raise ProjectError(
            f"project {project.name} has no timestamp column: a backtest splits rows by time; "
            "name the column holding each row's time under 'timestamp' in the project file",
            [Problem("timestamp", "not set")],
        )
    report = progress or (lambda _step, _done, _total: None)
    path = resolve_data_path(project, project_dir)
    frame = read_project_table(project, path)
    if project.timestamp not in frame.columns:
        raise DataError(
            f"{path.name} has no timestamp column {project.timestamp!r}",
            [Problem(project.timestamp, "column is missing")],
        )
    labelled = frame[project.target].notna().to_numpy()
    split = split_periods(frame[project.timestamp].where(labelled), by)
    if not split.periods:
        raise DataError(
            f"no row of {path.name} has both a target value and a readable time",
            [Problem(project.timestamp, "no readable time in a labelled row")],
        )
    if version is None:
        model = _train_on_first(project, frame, split.periods, by, train_periods, report)
    elif registry is None:
        raise ValueError("a backtest of a registered version needs its registry")
    else:
        model = _load_version(project, frame, registry, version)
    scored = split.periods[len(model.training_periods) :]
    total = model.steps_done + len(scored)
    positive = np.asarray(frame[project.target].astype(str) == str(model.positive))
    gates = project.parsed_gates()
    outcomes = []
    for period in scored:
        outcomes.append(_score_period(period, frame, positive, model, gates))
        report(f"scored {period.label}", 1, total)
    return BacktestResult(
        model=project.name,
        by=by,
        version=model.version,
        threshold=model.threshold,
        training_periods=model.training_periods,
        training_rows=model.training_rows,
        gates=[str(gate) for gate in gates],
        periods=outcomes,
        undated_rows=split.undated,
        unlabelled_rows=int((~labelled).sum()),
    )


@dataclass(frozen=True)
class _Scorer:
    """What scores the periods: a model trained here, or a registered version."""

    score: Callable[[pd.DataFrame], np.ndarray]
    threshold: float
    positive: object
    version: str | None = None
    training_periods: list[str] = field(default_factory=list)
    training_rows: int = 0
    steps_done: int = 0
    # The latest row time of the version's training table, when its manifest records it.
    last_training_time: datetime | None = None


def _train_on_first(
    project: Project,
    frame: pd.DataFrame,
    periods: list[PeriodRows],
    by: PeriodLength,
    train_periods: int,
    report: BacktestProgress,
) -> _Scorer:
    """A model trained on the first periods as ``tabops train`` trains, not registered."""
    if train_periods < 1 or len(periods) <= train_periods:
        raise DataError(
            f"the table's labelled, dated rows span {len(periods)} {by}(s): training on "
            f"{train_periods} and scoring at least one more needs {max(train_periods, 1) + 1}",
            [Problem("train_periods", f"must be at least 1 and below {len(periods)}")],
        )
    _check_rows(frame, project.schema_)
    training = periods[:train_periods]
    total = count_training_steps(project) + len(periods) - train_periods
    positions = np.sort(np.concatenate([period.positions for period in training]))
    result = train_model(
        project, frame.iloc[positions], lambda step, done: report(step, done, total)
    )
    spec, model = result.project.schema_, result.model

    def score(rows: pd.DataFrame) -> np.ndarray:
        probability: np.ndarray = model.predict_proba(coerce_frame(rows, spec))[:, 1]
        return probability

    return _Scorer(
        score=score,
        threshold=result.threshold.threshold,
        positive=project.positive_class,
        training_periods=[period.label for period in training],
        training_rows=len(positions),
        steps_done=count_training_steps(project),
    )


def _load_version(
    project: Project, frame: pd.DataFrame, registry: ModelRegistry, ref: str
) -> _Scorer:
    """A registered version, checked to predict the project's target from this table."""
    predictor = Predictor.load(registry, *parse_model_ref(ref))
    manifest = predictor.version.manifest
    if manifest.target is not None and manifest.target != project.target:
        raise DataError(
            f"{predictor.version.ref} predicts {manifest.target!r}, not the project's target "
            f"{project.target!r}",
            [Problem("version", "predicts another target")],
        )
    _check_rows(frame, predictor.spec)
    last = manifest.data.last_time if manifest.data is not None else None
    return _Scorer(
        score=predictor.score_frame,
        threshold=predictor.threshold,
        positive=manifest.classes.positive.value,
        version=predictor.version.ref,
        last_training_time=datetime.fromisoformat(last) if last is not None else None,
    )


def _check_rows(frame: pd.DataFrame, spec: FeatureSpec) -> None:
    """Refuse a table that breaks the feature spec, as training does.

    Raises:
        DataError: naming each failed column and check.
    """
    report = validate_frame(frame, spec, require_target=True)
    if not report.is_valid:
        problems = [
            Problem(failure.column or "table", f"{failure.check} ({failure.failed_rows} rows)")
            for failure in report.failures
        ]
        raise DataError("the table does not match the feature spec", problems)


def _score_period(
    period: PeriodRows,
    frame: pd.DataFrame,
    positive: np.ndarray,
    model: _Scorer,
    gates: list[Gate],
) -> PeriodResult:
    """The metrics and gate results of one period's rows."""
    y = positive[period.positions].astype(int)
    probability = model.score(frame.iloc[period.positions])
    evaluation = evaluate_model(y, probability, model.threshold)
    positives, rows = int(y.sum()), len(y)
    undefined = set(_NEED_BOTH_CLASSES) if positives in (0, rows) else set()
    undefined |= set(_NEED_POSITIVES) if positives == 0 else set()
    metrics = {
        name: None if name in undefined else value for name, value in evaluation.metrics.items()
    }
    last = model.last_training_time
    return PeriodResult(
        period=period.label,
        start=period.start,
        end=period.end,
        rows=rows,
        positives=positives,
        in_training=last is not None and period.start <= last,
        metrics=metrics,
        confusion=evaluation.confusion,
        gates=[_check_gate(gate, metrics.get(gate.metric)) for gate in gates],
    )


def _check_gate(gate: Gate, observed: float | None) -> PeriodGate:
    """A gate on an undefined (None or NaN) metric is undefined, not failed."""
    if observed is None or np.isnan(observed):
        return PeriodGate(gate=str(gate), metric=gate.metric, observed=None, status="undefined")
    status: Literal["passed", "failed"] = "passed" if gate.passes(observed) else "failed"
    return PeriodGate(gate=str(gate), metric=gate.metric, observed=observed, status=status)
