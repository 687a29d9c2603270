"""A small loans-like event table and its project, for the feature-store tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from conftest import FAST_TRAIN

MODEL = "loans"
VIEW = "clients"


def make_loans(clients: int = 120, loans: int = 1_500, seed: int = 0) -> pd.DataFrame:
    """Loans of repeated clients, with dates (ties included) and a learnable target."""
    rng = np.random.default_rng(seed)
    client = rng.integers(1000, 1000 + clients, loans)
    birth_year = rng.integers(1950, 2000, clients + 1000)
    own_car = rng.choice(["Y", "N"], clients + 1000)
    date = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 700, loans), unit="D")
    amount = rng.uniform(100, 400, loans).round(2)
    frame = pd.DataFrame(
        {
            "loan_id": np.arange(loans),
            "client": client,
            "date": date.strftime("%Y-%m-%d"),
            "amount": amount,
            "birthday": [f"{year}-06-15" for year in birth_year[client - 1000]],
            "own_car": own_car[client - 1000],
        }
    )
    age = 2021 - birth_year[client - 1000]
    logit = -2.0 + 0.004 * (amount - 250) + 0.04 * (45 - age) + 0.8 * (frame["own_car"] == "N")
    frame["status"] = (rng.uniform(size=loans) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame


PROJECT = {
    "name": MODEL,
    "data": "loans.csv",
    "target": "status",
    "entity": "client",
    "timestamp": "date",
    "positive_class": 1,
    "class_names": {"0": "good", "1": "bad"},
    "features": {
        "view": VIEW,
        "windows": [
            {"name": "previous_loans", "function": "count"},
            {"name": "previous_amount", "function": "mean", "column": "amount"},
            {"name": "largest_30d", "function": "max", "column": "amount", "window": "30d"},
        ],
        "rows": [
            {"name": "age", "kind": "years_between", "start": "birthday", "end": "date"},
            {"name": "car", "kind": "flag", "column": "own_car", "true_values": ["Y"]},
        ],
    },
    "schema": {
        "columns": [
            {"name": "client", "role": "excluded", "kind": "integer", "reason": "entity"},
            {"name": "date", "role": "excluded", "kind": "datetime", "reason": "time"},
            {"name": "status", "role": "target", "kind": "boolean"},
            {"name": "amount", "kind": "numeric"},
        ]
    },
    "train": {**FAST_TRAIN, "split": "group"},
}


def write_project(folder: Path, loans: pd.DataFrame) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    loans.to_csv(folder / "loans.csv", index=False)
    (folder / "tabops.yaml").write_text(yaml.safe_dump(PROJECT, sort_keys=False))
    return folder
