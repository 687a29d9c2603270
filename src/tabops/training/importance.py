"""Permutation importance on held-out rows, with bounded rows and batched predictions."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

IMPORTANCE_ROWS = 2_000
IMPORTANCE_REPEATS = 5


def permutation_importance_rows(y: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """Positions of at most ``limit`` rows: every positive up to half of them, negatives after.

    Rare positives are what the PR AUC turns on, so they are kept rather than sampled.
    """
    rows = np.arange(len(y))
    if len(rows) <= limit:
        return rows
    rng = np.random.default_rng(seed)
    positives, negatives = rows[y == 1], rows[y == 0]
    kept = min(len(positives), limit // 2)
    positives = rng.choice(positives, size=kept, replace=False)
    negatives = rng.choice(negatives, size=min(len(negatives), limit - kept), replace=False)
    return np.sort(np.concatenate([positives, negatives]))


def compute_permutation_importance(
    model: Any,
    x: pd.DataFrame,
    y: np.ndarray,
    seed: int,
    rows: int = IMPORTANCE_ROWS,
    repeats: int = IMPORTANCE_REPEATS,
) -> list[tuple[str, float, float]]:
    """The drop in PR AUC when each feature's values are shuffled: (feature, mean, std).

    Every shuffled copy of one feature is scored in a single call, so a model that costs
    much per call (a forest's thread pool) is called once per feature, not once per shuffle.
    Empty when the rows hold a single class.
    """
    if len(np.unique(y)) < 2:
        return []
    chosen = permutation_importance_rows(y, rows, seed)
    sample, labels = x.iloc[chosen].reset_index(drop=True), y[chosen]
    baseline = average_precision_score(labels, model.predict_proba(sample)[:, 1])
    rng = np.random.default_rng(seed)
    importance = []
    for column in sample.columns:
        values = sample[column].to_numpy()
        copies = pd.concat([sample] * repeats, ignore_index=True)
        shuffled = np.concatenate([values[rng.permutation(len(values))] for _ in range(repeats)])
        copies[column] = pd.Series(shuffled, dtype=sample[column].dtype)
        scores = model.predict_proba(copies)[:, 1].reshape(repeats, len(sample))
        drops = [baseline - average_precision_score(labels, score) for score in scores]
        importance.append((str(column), float(np.mean(drops)), float(np.std(drops))))
    return importance
