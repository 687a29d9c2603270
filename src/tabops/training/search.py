"""Cross-validated search over each candidate's settings: the same settings on any machine.

Which rows and settings a candidate is searched on depends on the project and the data only
(its grid, ``search_settings``, ``search_rows`` and the seed), never on how fast the machine
is. On a large table the search runs on a stratified sample and tries a few settings of each
grid; the chosen setting is then fit on every training row. The time budget is a safety cap:
a setting whose estimated cost would overrun it does not start, and the run says so.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import average_precision_score, roc_auc_score

from tabops.project import Project
from tabops.training.budget import RunClock
from tabops.training.candidates import TREES, build_candidate
from tabops.training.splits import cv_splitter

ProgressCallback = Callable[[str, float], None]
"""Called with a description of the current step and how many steps it completes (0 or 1)."""

# Up to this many search rows, cross-validation is cheap: every setting of each grid is tried.
SMALL_SEARCH_ROWS = 5_000
# Above it, this many settings per candidate: the first (defaults), then seeded draws.
LARGE_SEARCH_SETTINGS = 3
# A large search uses at most this many folds: on thousands of rows, three folds already
# rank settings steadily, and each fold less saves a fifth or more of the search.
LARGE_SEARCH_FOLDS = 3
# Forests compare their settings with this many trees on a large table, then the chosen
# setting grows the full number: the ranking settles long before the last trees do.
SEARCH_TREES = 50
# A sample keeps at least this many rows of the rarer class when the table has them, so
# that rare events are not sampled away (the sample grows instead).
SAMPLE_MINORITY_ROWS = 200


@dataclass
class CandidateScore:
    """Cross-validated scores of one candidate's best setting on the search rows."""

    name: str
    params: dict[str, Any]
    pr_auc_mean: float
    pr_auc_std: float
    roc_auc_mean: float
    roc_auc_std: float
    fit_seconds: float
    settings_tried: int
    oof_probability: np.ndarray = field(repr=False)
    settings_planned: int = 1


def planned_settings(
    space: list[dict[str, Any]], limit: int | None, seed: int
) -> list[dict[str, Any]]:
    """The settings a candidate tries, in order.

    The first of its grid, then the others in an order drawn from ``seed``: ``limit`` of
    them in all, or every one when None.
    """
    if len(space) <= 1:
        return list(space)
    order = np.random.default_rng(seed).permutation(len(space) - 1) + 1
    planned = [space[0], *(space[int(index)] for index in order)]
    return planned if limit is None else planned[:limit]


def settings_per_candidate(search_settings: int | None, search_rows: int) -> int | None:
    """How many settings each candidate tries: the project's number, else by table size."""
    if search_settings is not None:
        return search_settings
    return None if search_rows <= SMALL_SEARCH_ROWS else LARGE_SEARCH_SETTINGS


def sample_search_rows(y: np.ndarray, limit: int | None, seed: int) -> np.ndarray:
    """Positions of the rows the search runs on: all of them, or a stratified sample.

    The sample holds ``limit`` rows, or more when that many would hold fewer than
    ``SAMPLE_MINORITY_ROWS`` of the rarer class; each class keeps its share of the table.
    """
    rows = len(y)
    positives = int(y.sum())
    minority = min(positives, rows - positives)
    if limit is None or rows <= limit or minority == 0:
        return np.arange(rows)
    size = max(limit, math.ceil(SAMPLE_MINORITY_ROWS * rows / minority))
    if size >= rows:
        return np.arange(rows)
    rng = np.random.default_rng(seed)
    chosen = []
    for label in (0, 1):
        members = np.flatnonzero(y == label)
        count = round(len(members) * size / rows)
        chosen.append(rng.choice(members, size=count, replace=False))
    return np.sort(np.concatenate(chosen))


@dataclass(frozen=True)
class CutSearch:
    """A candidate whose search the time cap stopped: how many settings of how many ran."""

    name: str
    tried: int
    planned: int


class CandidateSearch:
    """Cross-validated search over each candidate's planned settings, under a time cap.

    Args:
        project: the project; its ``train`` settings say which rows and settings to try.
        x: the training rows' features; ``y`` their 0/1 labels; ``groups`` their entities
            when the project splits by entity.
        report: the progress callback.
        clock: the run's clock; a setting starts only when the time of the candidate's
            settings so far says it ends ``reserve_seconds`` before the cap.
    """

    def __init__(
        self,
        project: Project,
        x: pd.DataFrame,
        y: np.ndarray,
        groups: np.ndarray | None,
        report: ProgressCallback,
        clock: RunClock | None = None,
        reserve_seconds: float = 0.0,
    ) -> None:
        settings = project.train
        self.project = project
        self.clock = clock or RunClock(math.inf)
        self.reserve_seconds = reserve_seconds
        self.cut: list[CutSearch] = []
        self.skipped: list[str] = []
        self.rows = sample_search_rows(y, settings.search_rows, settings.seed)
        self.training_rows = len(y)
        self.x = x.iloc[self.rows]
        self.y = y[self.rows]
        self.groups = None if groups is None else groups[self.rows]
        self.limit = settings_per_candidate(settings.search_settings, len(self.rows))
        self.report = report
        self.is_large = len(self.rows) > SMALL_SEARCH_ROWS
        folds = min(settings.cv_folds, LARGE_SEARCH_FOLDS) if self.is_large else None
        splitter = cv_splitter(project, self.y, folds)
        self.folds = list(
            splitter.split(self.x, self.y, self.groups)
            if settings.split == "group"
            else splitter.split(self.x, self.y)
        )
        self.fold_rows = len(self.y) * (len(self.folds) - 1) // len(self.folds)
        self.members: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        self.setting_seconds: dict[str, float] = {}

    @property
    def is_sampled(self) -> bool:
        """Whether the search ran on a sample of the training rows."""
        return len(self.rows) < self.training_rows

    def build(self, score: CandidateScore, fit_rows: int) -> Any:
        """An unfitted pipeline of a scored candidate's best setting, for ``fit_rows`` rows."""
        members = self.members.get(score.name)
        return self._pipeline(score.name, score.params, members, fit_rows, TREES)

    def _pipeline(
        self,
        name: str,
        params: dict[str, Any],
        members: list[tuple[str, dict[str, Any]]] | None,
        fit_rows: int,
        trees: int,
    ) -> Any:
        settings = self.project.train
        positives = int(self.y.sum())
        minority = min(positives, len(self.y) - positives)
        return build_candidate(
            name,
            params,
            self.project.schema_,
            imbalance=settings.imbalance,
            seed=settings.seed,
            # Each CV fold fits on (k-1)/k of the rows: SMOTE's neighbours must fit in that.
            minority_rows=minority * (len(self.folds) - 1) // len(self.folds),
            negatives_per_positive=(len(self.y) - positives) / max(positives, 1),
            fit_rows=fit_rows,
            trees=trees,
            members=members,
        )

    def run(self, name: str, space: list[dict[str, Any]]) -> CandidateScore | None:
        """The best of one candidate's planned settings; None when the cap let none start.

        A setting starts when the mean time of the candidate's settings so far says it ends
        before the reserve; a candidate's first setting, with nothing to estimate from, when
        the reserve is not yet reached (the run's very first setting always starts).
        """
        planned = planned_settings(space, self.limit, self.project.train.seed)
        best: CandidateScore | None = None
        spent: list[float] = []
        for tried, params in enumerate(planned, start=1):
            estimate = float(np.mean(spent)) if spent else 0.0
            first_of_run = not spent and not self.setting_seconds
            if not first_of_run and not self.clock.allows(estimate, self.reserve_seconds):
                if spent:
                    self.cut.append(CutSearch(name, tried - 1, len(planned)))
                else:
                    self.skipped.append(name)
                break
            started = time.perf_counter()
            score = self._cross_validate(name, params, tried, len(planned))
            spent.append(time.perf_counter() - started)
            # Ties go to the earlier setting, so the order decides, not the clock.
            if best is None or score.pr_auc_mean > best.pr_auc_mean:
                best = score
        if best is None:
            self.report(f"{name}: not started, the time cap is near", 1)
            return None
        self.setting_seconds[name] = float(np.mean(spent))
        best.settings_tried = len(spent)
        best.settings_planned = len(planned)
        self.report(
            f"{name}: PR AUC {best.pr_auc_mean:.3f} ({len(spent)} setting{'s' * (len(spent) > 1)})",
            1,
        )
        return best

    def combine(self, name: str, members: list[CandidateScore]) -> CandidateScore:
        """A soft-voting candidate over scored members, scored from their out-of-fold answers.

        Soft voting averages its members' probabilities, and each member was fit on the same
        folds with the same setting, so the average of their out-of-fold probabilities is
        what cross-validating the ensemble gives (up to the scaling or resampling the
        ensemble's members share), without fitting anything again.
        """
        self.members[name] = [(member.name, member.params) for member in members]
        oof = np.mean([member.oof_probability for member in members], axis=0)
        pr_auc = [average_precision_score(self.y[rows], oof[rows]) for _, rows in self.folds]
        roc_auc = [roc_auc_score(self.y[rows], oof[rows]) for _, rows in self.folds]
        self.setting_seconds[name] = sum(self.setting_seconds[m.name] for m in members)
        score = CandidateScore(
            name=name,
            params={},
            pr_auc_mean=float(np.mean(pr_auc)),
            pr_auc_std=float(np.std(pr_auc)),
            roc_auc_mean=float(np.mean(roc_auc)),
            roc_auc_std=float(np.std(roc_auc)),
            fit_seconds=sum(member.fit_seconds for member in members),
            settings_tried=1,
            oof_probability=oof,
        )
        self.report(f"{name}: PR AUC {score.pr_auc_mean:.3f} (of {len(members)} candidates)", 1)
        return score

    def _cross_validate(
        self,
        name: str,
        params: dict[str, Any],
        setting: int,
        settings: int,
    ) -> CandidateScore:
        oof = np.zeros(len(self.y))
        pr_auc, roc_auc = [], []
        started = time.perf_counter()
        trees = SEARCH_TREES if self.is_large else TREES
        template = self._pipeline(name, params, None, self.fold_rows, trees)
        for fold, (fit_rows, score_rows) in enumerate(self.folds, start=1):
            self.report(f"{name} setting {setting}/{settings}, fold {fold}/{len(self.folds)}", 0)
            model = clone(template).fit(self.x.iloc[fit_rows], self.y[fit_rows])
            probability = model.predict_proba(self.x.iloc[score_rows])[:, 1]
            oof[score_rows] = probability
            pr_auc.append(average_precision_score(self.y[score_rows], probability))
            roc_auc.append(roc_auc_score(self.y[score_rows], probability))
        return CandidateScore(
            name=name,
            params=params,
            pr_auc_mean=float(np.mean(pr_auc)),
            pr_auc_std=float(np.std(pr_auc)),
            roc_auc_mean=float(np.mean(roc_auc)),
            roc_auc_std=float(np.std(roc_auc)),
            fit_seconds=(time.perf_counter() - started) / len(self.folds),
            settings_tried=1,
            oof_probability=oof,
        )
