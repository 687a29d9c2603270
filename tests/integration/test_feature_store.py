"""The online feature store on real databases: SQLite files and PostgreSQL."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy.exc

from conftest import DATASETS
from tabops.config import Settings
from tabops.database import create_database_engine
from tabops.errors import DataError
from tabops.feature_store import SqlFeatureStore, import_table, open_feature_store

KUESKI_DB = DATASETS / "kueski_feature_store_online.db"
KUESKI_CSV = DATASETS / "kueski_features_by_client.csv.gz"
KUESKI_FEATURES = [
    "nb_previous_loans",
    "avg_amount_loans_previous",
    "age",
    "years_on_the_job",
    "flag_own_car",
]


@pytest.fixture
def store(database_url) -> Iterator[SqlFeatureStore]:
    feature_store = SqlFeatureStore(create_database_engine(database_url))
    yield feature_store
    feature_store.close()


def clients() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [1, 2, 3, 4, 5],
            "seen": pd.to_datetime([f"2024-01-0{day} 10:00:00" for day in range(1, 6)]),
            "amount": [10.5, np.nan, 30.25, 40.0, 50.125],
            "loans": [1, 2, 3, 4, 5],
            "has_car": [True, False, True, False, True],
            "city": ["Lima", "Quito", None, "Bogotá", "Cali"],
        }
    )


def test_write_then_get_returns_values_and_times(store):
    before = datetime.now(UTC)
    report = store.write("clients", clients(), "id", event_time="seen")
    after = datetime.now(UTC)

    assert (report.entities, report.inserted, report.updated, report.unchanged) == (5, 5, 0, 0)
    row = store.get("clients", "2")
    assert row is not None
    assert (row.view, row.entity_id) == ("clients", "2")
    assert row.values == {"amount": None, "loans": 2, "has_car": False, "city": "Quito"}
    assert list(row.values) == ["amount", "loans", "has_car", "city"]
    assert row.event_time == datetime(2024, 1, 2, 10, tzinfo=UTC)
    assert row.event_time.tzinfo == UTC
    assert row.materialized_at.tzinfo == UTC
    assert before - timedelta(milliseconds=1) <= row.materialized_at <= after
    assert store.get("clients", "3").values["city"] is None


def test_get_returns_none_for_unknown_entity_or_view(store):
    store.write("clients", clients(), "id")

    assert store.get("clients", "999") is None
    assert store.get("other", "1") is None
    assert store.get("clients", "1").event_time is None


def test_second_write_stores_only_changed_entities(store):
    store.write("clients", clients(), "id", event_time="seen")
    first = store.get_many("clients", ["1", "2", "3", "4", "5"])
    changed = clients()
    changed.loc[0, "amount"] = 11.5  # a new value
    changed.loc[1, "seen"] = pd.Timestamp("2024-02-01")  # a new event time, same values
    changed.loc[5] = [6, pd.Timestamp("2024-01-06"), 60.0, 6, False, "Lima"]  # a new entity

    report = store.write("clients", changed, "id", event_time="seen")

    assert (report.entities, report.inserted, report.updated, report.unchanged) == (6, 1, 2, 3)
    assert report.removed == 0
    second = store.get_many("clients", ["1", "2", "3", "4", "5", "6"])
    assert second["1"].values["amount"] == 11.5
    assert second["2"].event_time == datetime(2024, 2, 1, tzinfo=UTC)
    for entity_id in ("3", "4", "5"):
        assert second[entity_id] == first[entity_id]
    assert second["1"].materialized_at > first["1"].materialized_at
    assert second["6"].materialized_at == second["1"].materialized_at
    again = store.write("clients", changed, "id", event_time="seen")
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 6)
    assert store.view("clients").entities == 6


def test_floats_round_trip_exactly(store):
    rng = np.random.default_rng(7)
    values = np.concatenate(
        [
            rng.random(300) * 1e6,
            rng.normal(size=300) * 1e-300,
            -rng.random(300) / 3,
            [5e-324, 1.7976931348623157e308, 0.1, 1 / 3, -0.0, 0.0, 2.0**53 + 2],
        ]
    )
    frame = pd.DataFrame({"id": np.arange(len(values)), "x": values, "y": values[::-1]})
    frame.loc[3, "x"] = np.nan

    store.write("floats", frame, "id")

    rows = store.get_many("floats", [str(entity) for entity in frame["id"]])
    for entity, x, y in zip(frame["id"], frame["x"], frame["y"], strict=True):
        served = rows[str(entity)].values
        if entity == 3:
            assert served["x"] is None
        else:
            assert served["x"] == x
            assert math.copysign(1.0, served["x"]) == math.copysign(1.0, x)
        assert served["y"] == y


@pytest.mark.parametrize(
    ("ids", "expected"),
    [
        ([5008804, 5008805], ["5008804", "5008805"]),
        ([5008804.0, 5008805.0], ["5008804", "5008805"]),
        (["A-1", "007"], ["A-1", "007"]),
        (pd.Series([5008804, "A-1", 12.0], dtype=object), ["5008804", "A-1", "12"]),
    ],
)
def test_entity_ids_are_stored_as_text(store, ids, expected):
    frame = pd.DataFrame({"id": ids, "x": range(len(expected))})

    store.write("ids", frame, "id")

    assert sorted(store.get_many("ids", expected)) == sorted(expected)


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        ([1, 2, 2, 3, 3, 4], "2 ids repeat: 2, 3"),
        (pd.Series([5, "5", 5.0], dtype=object), "1 ids repeat: 5"),
        ([1.0, np.nan], "missing"),
        ([1.5, 2.0], "fractional"),
        (pd.Series(["a", None], dtype=object), "missing or invalid"),
    ],
)
def test_write_rejects_bad_entity_ids(store, ids, message):
    frame = pd.DataFrame({"id": ids, "x": range(len(ids))})

    with pytest.raises(DataError, match=message):
        store.write("ids", frame, "id")
    assert store.view("ids") is None


def test_write_rejects_missing_columns_and_bad_values(store):
    with pytest.raises(DataError, match="no entity column 'client'"):
        store.write("clients", clients(), "client")
    with pytest.raises(DataError, match="no event_time column 'when'"):
        store.write("clients", clients(), "id", event_time="when")
    with pytest.raises(DataError, match="no feature column"):
        store.write("clients", clients()[["id"]], "id")
    with pytest.raises(DataError, match="infinite"):
        store.write("clients", pd.DataFrame({"id": [1], "x": [np.inf]}), "id")
    with pytest.raises(DataError, match="holds numbers"):
        store.write("clients", clients(), "id", event_time="loans")
    with pytest.raises(DataError, match="not ISO-8601: Time data 03/01/2024"):
        store.write("clients", clients().assign(seen="03/01/2024"), "id", event_time="seen")
    assert store.views() == []


def test_values_of_other_types_are_stored_as_json(store):
    frame = pd.DataFrame(
        {
            "id": ["a", "b"],
            "seen": ["2024-03-01T12:00:00+02:00", None],
            "opened": pd.to_datetime(["2023-05-01 08:30", None]),
            "segment": pd.Categorical(["gold", None]),
            "count": pd.array([3, None], dtype="Int64"),
            "small": np.array([0.1, 0.5], dtype=np.float32),
        }
    )

    store.write("mixed", frame, "id", event_time="seen")

    a, b = store.get("mixed", "a"), store.get("mixed", "b")
    assert a.event_time == datetime(2024, 3, 1, 10, tzinfo=UTC)
    assert b.event_time is None
    assert a.values == {
        "opened": "2023-05-01T08:30:00",
        "segment": "gold",
        "count": 3,
        "small": float(np.float32(0.1)),
    }
    assert a.values["small"] == np.float32(0.1)
    assert b.values == {"opened": None, "segment": None, "count": None, "small": 0.5}


def test_views_describe_each_view(store):
    store.write("clients", clients(), "id", event_time="seen")
    store.write("accounts", pd.DataFrame({"account": ["x"], "balance": [1.0]}), "account")

    summaries = store.views()

    assert [summary.view for summary in summaries] == ["accounts", "clients"]
    clients_view = store.view("clients")
    assert clients_view.entity == "id"
    assert clients_view.features == ["amount", "loans", "has_car", "city"]
    assert clients_view.entities == 5
    assert clients_view.updated.tzinfo == UTC
    assert clients_view.updated == store.get("clients", "1").materialized_at
    assert store.view("missing") is None


def test_changed_feature_list_replaces_the_view(store):
    store.write("clients", clients(), "id")
    renamed = clients().rename(columns={"amount": "balance"}).drop(columns=["seen"]).head(2)

    report = store.write("clients", renamed, "id")

    assert (report.inserted, report.updated, report.unchanged, report.removed) == (2, 0, 0, 5)
    assert store.get("clients", "3") is None
    assert list(store.get("clients", "1").values) == ["balance", "loans", "has_car", "city"]
    assert store.view("clients").features == ["balance", "loans", "has_car", "city"]
    assert store.view("clients").entities == 2


@pytest.mark.postgres
def test_failed_write_changes_nothing(postgres_url):
    store = SqlFeatureStore(create_database_engine(postgres_url))
    try:
        store.write("clients", clients(), "id")
        # PostgreSQL refuses NUL in text: the upsert fails after the old rows were deleted.
        bad = pd.DataFrame({"id": ["ok", "bad\x00id"], "other": [1, 2]})
        with pytest.raises(sqlalchemy.exc.DBAPIError):
            store.write("clients", bad, "id")
        assert store.view("clients").features == ["seen", "amount", "loans", "has_car", "city"]
        assert len(store.get_many("clients", ["1", "2", "3", "4", "5", "ok"])) == 5
    finally:
        store.close()


def test_get_many_skips_unknown_and_repeated_ids(store):
    frame = pd.DataFrame({"id": np.arange(2_500), "x": np.arange(2_500) * 0.5})
    store.write("many", frame, "id")

    wanted = [str(entity) for entity in range(0, 3_000, 2)] + ["0", "nobody"]
    rows = store.get_many("many", wanted)

    assert len(rows) == 1_250
    assert rows["2498"].values == {"x": 1249.0}
    assert store.get_many("many", []) == {}


@pytest.mark.skipif(not KUESKI_DB.is_file(), reason=f"the Kueski dataset is absent: {KUESKI_DB}")
def test_import_kueski_table_matches_the_csv(store):
    report = import_table(
        store, "kueski", KUESKI_DB, "id", table_name="features_table", drop=["status"]
    )

    assert (report.entities, report.inserted) == (36_457, 36_457)
    summary = store.view("kueski")
    assert (summary.entity, summary.features, summary.entities) == ("id", KUESKI_FEATURES, 36_457)
    expected = pd.read_csv(KUESKI_CSV).set_index("id")
    for client in (5008804, 5150487, int(expected["years_on_the_job"].isna().idxmax())):
        served = store.get("kueski", str(client)).values
        offline = expected.loc[client, KUESKI_FEATURES].to_dict()
        assert served == {k: None if pd.isna(v) else v for k, v in offline.items()}
    # The CSV export holds the same values, so importing it changes nothing.
    again = import_table(store, "kueski", KUESKI_CSV, "id", drop=["status"])
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 36_457)


def test_import_reports_missing_file_table_and_column(store, tmp_path):
    csv = tmp_path / "features.csv"
    clients().to_csv(csv, index=False)

    with pytest.raises(DataError, match="no data file"):
        import_table(store, "clients", tmp_path / "absent.csv", "id")
    with pytest.raises(DataError, match="no column"):
        import_table(store, "clients", csv, "id", drop=["status"])
    with pytest.raises(DataError, match="not a SQLite file"):
        import_table(store, "clients", csv, "id", table_name="features_table")
    with pytest.raises(DataError, match="no entity column"):
        import_table(store, "clients", csv, "client")
    if KUESKI_DB.is_file():
        with pytest.raises(DataError, match="has no table 'loans'"):
            import_table(store, "clients", KUESKI_DB, "id", table_name="loans")
    report = import_table(store, "clients", csv, "id", "seen", drop=["city"])
    assert report.inserted == 5
    assert store.view("clients").features == ["amount", "loans", "has_car"]


def test_open_feature_store_uses_the_metadata_database(tmp_path):
    settings = Settings(home=tmp_path / "home")
    store = open_feature_store(settings)
    try:
        store.write("clients", clients(), "id")
    finally:
        store.close()
    assert (tmp_path / "home" / "tabops.db").is_file()
    reopened = open_feature_store(settings)
    try:
        assert reopened.get("clients", "5").values["amount"] == 50.125
    finally:
        reopened.close()


def test_import_path_accepts_parquet(store, tmp_path: Path):
    parquet = tmp_path / "features.parquet"
    clients().to_parquet(parquet, index=False)

    report = import_table(store, "clients", parquet, "id", "seen")

    assert report.inserted == 5
    assert store.get("clients", "4").event_time == datetime(2024, 1, 4, 10, tzinfo=UTC)
