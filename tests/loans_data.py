"""A small loans-like event table and its project, for the feature-store tests.

Fixtures (registered by the conftest of each tier that uses them):

- ``loans_trained``: a home with the loans model trained and its features materialised
  into the online store, and the project folder; built once per test process.
- ``loans_home``: a private copy of that home (free to modify) and the same project
  folder (read only).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import FAST_TRAIN, make_registry
from tabops.config import Settings
from tabops.feature_store.offline import materialize
from tabops.feature_store.sql import open_feature_store
from tabops.project import load_project
from tabops.training.register import train_project

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


class LoansHome(NamedTuple):
    """A home holding the trained loans model and its features, and its project folder."""

    home: Path
    folder: Path


def build_loans_home(home: Path, folder: Path) -> LoansHome:
    """Write the project into ``folder``, train it into ``home`` and materialise its features."""
    write_project(folder, make_loans())
    project, _ = load_project(folder)
    train_project(project, folder, make_registry(home))
    store = open_feature_store(Settings(home=home))
    materialize(project, folder, home, store, build=True)
    store.engine.dispose()
    return LoansHome(home, folder)


@pytest.fixture(scope="session")
def loans_trained(tmp_path_factory: pytest.TempPathFactory) -> LoansHome:
    return build_loans_home(
        tmp_path_factory.mktemp("loans-home"), tmp_path_factory.mktemp("loans") / "project"
    )


@pytest.fixture
def loans_home(loans_trained: LoansHome, tmp_path: Path) -> LoansHome:
    home = tmp_path / "loans-home"
    shutil.copytree(loans_trained.home, home)
    return LoansHome(home, loans_trained.folder)
