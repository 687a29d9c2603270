"""``tabops features build | materialize | import`` through Typer's CliRunner."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import DATASETS
from loans_data import VIEW, make_loans, write_project
from tabops.cli.main import app
from tabops.config import Settings, get_settings
from tabops.feature_store.sql import open_feature_store

KUESKI_DB = DATASETS / "kueski_feature_store_online.db"


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    monkeypatch.setenv("COLUMNS", "160")
    monkeypatch.setenv("TABOPS_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    yield tmp_path / "home"
    get_settings.cache_clear()


def run(*args: object):
    return CliRunner().invoke(app, [str(arg) for arg in args])


def test_build_then_materialize_then_materialize_again(home, tmp_path):
    folder = write_project(tmp_path / "project", make_loans(clients=40, loans=300))
    built = run("features", "build", "-p", folder)
    assert built.exit_code == 0, built.output
    assert "built view clients: 300 rows, 40 entities" in built.output
    assert (home / "features" / VIEW / "table.parquet").is_file()
    first = run("features", "materialize", "-p", folder)
    assert first.exit_code == 0, first.output
    assert "40 entities, 40 new, 0 updated, 0 unchanged" in first.output
    again = run("features", "materialize", "-p", folder)
    assert "0 new, 0 updated, 40 unchanged" in again.output


def test_materialize_of_a_project_without_entity_is_a_clear_error(home, project_dir):
    result = run("features", "materialize", "-p", project_dir)
    assert result.exit_code == 1
    assert "has no entity column" in result.output


def test_import_of_the_credit_risk_feature_table(home):
    if not KUESKI_DB.is_file():
        pytest.skip(f"the Kueski feature table is not at {KUESKI_DB}")
    result = run(
        "features",
        "import",
        KUESKI_DB,
        "--table",
        "features_table",
        "--view",
        "credit-risk",
        "--entity",
        "id",
        "--drop",
        "status",
    )
    assert result.exit_code == 0, result.output
    assert "36457 entities, 36457 new" in result.output
    store = open_feature_store(Settings(home=home))
    try:
        row = store.get("credit-risk", "5008804")
    finally:
        store.close()
    assert row is not None
    assert set(row.values) == {
        "nb_previous_loans",
        "avg_amount_loans_previous",
        "age",
        "years_on_the_job",
        "flag_own_car",
    }


def test_import_of_a_missing_file_is_a_clear_error(home, tmp_path):
    result = run("features", "import", tmp_path / "none.csv", "--view", "v", "--entity", "id")
    assert result.exit_code == 1
    assert "none.csv" in result.output
