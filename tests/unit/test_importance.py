from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from tabops.training.importance import (
    compute_permutation_importance,
    permutation_importance_rows,
)


def test_the_rows_keep_rare_positives_and_never_exceed_the_limit():
    y = np.zeros(50_000, dtype=int)
    y[::500] = 1  # 100 positives
    rows = permutation_importance_rows(y, 2_000, seed=0)
    assert len(rows) == 2_000
    assert y[rows].sum() == 100

    common = (np.arange(50_000) % 2).astype(int)  # half positive
    rows = permutation_importance_rows(common, 2_000, seed=0)
    assert len(rows) == 2_000
    assert common[rows].sum() == 1_000


def test_a_signal_matters_and_noise_does_not():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"signal": rng.normal(size=3_000), "noise": rng.normal(size=3_000)})
    y = (frame["signal"] + rng.normal(scale=0.5, size=3_000) > 1.0).astype(int).to_numpy()
    model = LogisticRegression().fit(frame, y)

    importance = {
        name: (mean, std)
        for name, mean, std in compute_permutation_importance(model, frame, y, seed=0)
    }

    assert importance["signal"][0] > 0.3
    assert abs(importance["noise"][0]) < 0.01
    assert importance["signal"][1] >= 0
    again = compute_permutation_importance(model, frame, y, seed=0)
    assert [item[1] for item in again] == [importance["signal"][0], importance["noise"][0]]


def test_one_class_gives_no_importance():
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0]})
    model = LogisticRegression().fit(pd.DataFrame({"a": [0.0, 1.0]}), [0, 1])
    assert compute_permutation_importance(model, frame, np.zeros(3, dtype=int), seed=0) == []
