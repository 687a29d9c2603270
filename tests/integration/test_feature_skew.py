"""No training/serving skew: offline features of each entity's latest row equal what the
online store serves, exactly, on SQLite and on the real PostgreSQL; and an entity's
features computed from its own rows alone (serving) equal its rows in the whole table."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import create_engine

from loans_data import make_loans, write_project
from tabops.config import Settings
from tabops.feature_store.offline import load_feature_table, materialize
from tabops.feature_store.sql import SqlFeatureStore
from tabops.features import compute_features, latest_rows
from tabops.project import load_project

SAMPLE = 40


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'online.db'}"
    else:
        url = request.getfixturevalue("postgres_url").replace(
            "postgresql://", "postgresql+psycopg://"
        )
    feature_store = SqlFeatureStore(create_engine(url))
    yield feature_store
    feature_store.close()


def equal(offline: object, served: object) -> bool:
    if isinstance(offline, float) and math.isnan(offline):
        return served is None
    return offline == served


def test_offline_latest_rows_equal_the_served_rows_exactly(store, tmp_path: Path):
    folder = write_project(tmp_path / "project", make_loans(clients=300, loans=4_000, seed=7))
    project, _ = load_project(folder)
    home = Settings(home=tmp_path / "home").home
    report = materialize(project, folder, home, store, build=True)
    assert report.inserted == report.entities == 300
    latest = latest_rows(load_feature_table(project, home), "client", "date")
    rng = np.random.default_rng(0)
    names = project.schema_.feature_names
    for index in rng.choice(len(latest), SAMPLE, replace=False):
        row = latest.iloc[index]
        served = store.get("clients", str(row["client"]))
        assert served is not None
        for name in names:
            assert equal(row[name].item(), served.values[name]), (row["client"], name)
        assert served.event_time is not None
        assert served.event_time.date() == pd.Timestamp(row["date"]).date()


def test_one_entity_alone_gives_its_rows_of_the_whole_table_bit_for_bit(tmp_path: Path):
    folder = write_project(tmp_path / "project", make_loans(clients=50, loans=2_000, seed=3))
    project, _ = load_project(folder)
    assert project.features is not None
    loans = pd.read_csv(folder / "loans.csv")
    whole = compute_features(loans, project.features, "client", "date")
    for client in loans["client"].unique()[:10]:
        alone = compute_features(
            loans[loans["client"] == client], project.features, "client", "date"
        )
        part = whole[loans["client"] == client]
        for name in project.features.names:
            assert np.array_equal(
                alone[name].to_numpy(float), part[name].to_numpy(float), equal_nan=True
            ), (client, name)
