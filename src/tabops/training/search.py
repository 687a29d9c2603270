"""Cross-validated search over each candidate's settings: the same settings on any machine.

Which settings a candidate tries depends on the project only (its grid, ``search_settings``
and the seed), never on how fast the machine is; the time budget is a safety cap on the whole
search, and a search it cuts short is recorded (``CandidateSearch.cut``) for the run to say.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import average_precision_score, roc_auc_score

from tabops.project import Project
from tabops.training.candidates import build_candidate
from tabops.training.splits import cv_splitter

ProgressCallback = Callable[[str, float], None]
"""Called with a description of the current step and how many steps it completes (0 or 1)."""


@dataclass
class CandidateScore:
    """Cross-validated scores of one candidate's best setting on the training rows."""

    name: str
    params: dict[str, Any]
    pr_auc_mean: float
    pr_auc_std: float
    roc_auc_mean: float
    roc_auc_std: float
    fit_seconds: float
    settings_tried: int
    oof_probability: np.ndarray = field(repr=False)


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


@dataclass(frozen=True)
class CutSearch:
    """A candidate whose search the time cap stopped: how many settings of how many ran."""

    name: str
    tried: int
    planned: int


class CandidateSearch:
    """Cross-validated search over each candidate's planned settings, under a time cap.

    Args:
        deadline: a ``time.perf_counter()`` value after which no further setting starts
            (the first setting of every candidate always runs).
    """

    def __init__(
        self,
        project: Project,
        x: pd.DataFrame,
        y: np.ndarray,
        groups: np.ndarray | None,
        report: ProgressCallback,
        deadline: float = float("inf"),
    ) -> None:
        self.project = project
        self.deadline = deadline
        self.cut: list[CutSearch] = []
        self.x = x
        self.y = y
        self.groups = groups
        self.report = report
        splitter = cv_splitter(project, y)
        self.folds = list(
            splitter.split(x, y, groups) if project.train.split == "group" else splitter.split(x, y)
        )
        self.members: dict[str, list[tuple[str, dict[str, Any]]]] = {}

    def build(self, score: CandidateScore) -> Any:
        """An unfitted pipeline for a scored candidate and its best setting."""
        return self._pipeline(score.name, score.params, self.members.get(score.name))

    def _pipeline(
        self, name: str, params: dict[str, Any], members: list[tuple[str, dict[str, Any]]] | None
    ) -> Any:
        settings = self.project.train
        minority = int(min(self.y.sum(), len(self.y) - self.y.sum()))
        return build_candidate(
            name,
            params,
            self.project.schema_,
            imbalance=settings.imbalance,
            seed=settings.seed,
            # Each CV fold fits on (k-1)/k of the rows: SMOTE's neighbours must fit in that.
            minority_rows=minority * (settings.cv_folds - 1) // settings.cv_folds,
            members=members,
        )

    def run(
        self,
        name: str,
        space: list[dict[str, Any]],
        members: list[tuple[str, dict[str, Any]]] | None = None,
    ) -> CandidateScore:
        """The best of one candidate's planned settings (the first always runs)."""
        if members is not None:
            self.members[name] = members
        settings = self.project.train
        planned = planned_settings(space, settings.search_settings, settings.seed)
        best: CandidateScore | None = None
        for tried, params in enumerate(planned, start=1):
            score = self._cross_validate(name, params, members, tried, len(planned))
            # Ties go to the earlier setting, so the order decides, not the clock.
            if best is None or score.pr_auc_mean > best.pr_auc_mean:
                best = score
            if tried < len(planned) and time.perf_counter() > self.deadline:
                self.cut.append(CutSearch(name, tried, len(planned)))
                break
        assert best is not None
        best.settings_tried = tried
        self.report(
            f"{name}: PR AUC {best.pr_auc_mean:.3f} ({tried} setting{'s' * (tried > 1)})", 1
        )
        return best

    def _cross_validate(
        self,
        name: str,
        params: dict[str, Any],
        members: list[tuple[str, dict[str, Any]]] | None,
        setting: int,
        settings: int,
    ) -> CandidateScore:
        oof = np.zeros(len(self.y))
        pr_auc, roc_auc = [], []
        started = time.perf_counter()
        template = self._pipeline(name, params, members)
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
