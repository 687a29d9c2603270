"""``tabops monitor backtest`` end to end: a dated loans project, trained or registered models."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from conftest import make_registry
from loans_data import make_loans, write_project
from tabops.cli.main import app
from tabops.config import get_settings
from tabops.project import PROJECT_FILE, load_project
from tabops.training.register import train_project

QUICK_TRAIN = {
    "candidates": ["logistic_regression"],
    "cv_folds": 2,
    "bootstrap_resamples": 0,
    "search_settings": 1,
}
# make_loans dates run from 2020-01-01 over 700 days: eight quarters, 2020-Q1 to 2021-Q4.
QUARTERS = [f"{year}-Q{quarter}" for year in (2020, 2021) for quarter in (1, 2, 3, 4)]


@pytest.fixture
def loans() -> pd.DataFrame:
    return make_loans()


@pytest.fixture
def project_folder(tmp_path: Path, loans: pd.DataFrame) -> Path:
    folder = write_project(tmp_path / "loans", loans)
    set_project(folder, gates={"roc_auc": ">=0.5"})
    return folder


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("TABOPS_HOME", str(home))
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


def set_project(folder: Path, **changes: object) -> None:
    path = folder / PROJECT_FILE
    document = yaml.safe_load(path.read_text())
    document["train"].update(QUICK_TRAIN)
    document.update(changes)
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def backtest(*args: object):
    return CliRunner().invoke(app, ["monitor", "backtest", *(str(arg) for arg in args)])


def flat(output: str) -> str:
    return " ".join(output.split())


def test_backtest_trains_on_first_quarter_and_scores_each_later_one(
    home, project_folder, loans, tmp_path
):
    out = tmp_path / "result.json"

    result = backtest("-p", project_folder, "--by", "quarter", "-o", out)

    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    assert document["training_periods"] == ["2020-Q1"]
    assert [period["period"] for period in document["periods"]] == QUARTERS[1:]
    quarters = pd.to_datetime(loans["date"]).dt.to_period("Q").astype(str).str.replace("Q", "-Q")
    for period in document["periods"]:
        rows = loans[quarters == period["period"]]
        assert period["rows"] == len(rows)
        assert period["positives"] == int(rows["status"].sum())
        assert 0.5 <= period["metrics"]["roc_auc"] <= 1
        assert period["gates"] == [
            {
                "gate": "roc_auc >= 0.5",
                "metric": "roc_auc",
                "observed": period["metrics"]["roc_auc"],
                "status": "passed",
            }
        ]
        assert period["status"] == "passed"
        assert period["in_training"] is False
    assert document["training_rows"] == int((quarters == "2020-Q1").sum())
    printed = flat(result.output)
    assert "trained on 2020-Q1" in printed
    assert "roc_auc >= 0.5" in printed
    assert all(quarter in printed for quarter in QUARTERS[1:])
    # Nothing was registered.
    assert make_registry(home).list_models() == []


def test_gate_some_periods_miss_exits_3_naming_them_and_csv_has_a_row_each(
    home, project_folder, tmp_path
):
    first = tmp_path / "first.json"
    assert backtest("-p", project_folder, "--by", "quarter", "-o", first).exit_code == 0
    observed = {
        p["period"]: p["metrics"]["roc_auc"] for p in json.loads(first.read_text())["periods"]
    }
    # Halfway between the two middle values: some periods pass and the rest fail.
    ranked = sorted(observed.values())
    bar = round((ranked[len(ranked) // 2 - 1] + ranked[len(ranked) // 2]) / 2, 4)
    failing = [period for period, auc in observed.items() if auc < bar]
    set_project(project_folder, gates={"roc_auc": f">={bar}"})
    out = tmp_path / "result.csv"

    result = backtest("-p", project_folder, "--by", "quarter", "-o", out)

    assert result.exit_code == 3, result.output
    assert "Traceback" not in result.output
    assert f"{len(failing)} of {len(observed)} periods failed a gate: {', '.join(failing)}" in (
        flat(result.output)
    )
    with out.open() as stream:
        rows = list(csv.DictReader(stream))
    assert [row["period"] for row in rows] == list(observed)
    gate = f"roc_auc >= {bar:g}"
    for row in rows:
        expected = "failed" if row["period"] in failing else "passed"
        assert row[gate] == expected
        assert row["status"] == expected
        assert float(row["roc_auc"]) == pytest.approx(observed[row["period"]])


def test_period_with_one_class_is_undefined_not_failed(home, tmp_path, loans):
    late = pd.to_datetime(loans["date"]) >= "2021-10-01"
    loans.loc[late, "status"] = 0
    folder = write_project(tmp_path / "loans", loans)
    set_project(folder, gates={"roc_auc": ">=0.5", "brier": "<=0.5"})
    out = tmp_path / "result.json"

    result = backtest("-p", folder, "--by", "quarter", "-o", out)

    assert result.exit_code == 0, result.output
    last = json.loads(out.read_text())["periods"][-1]
    assert last["period"] == "2021-Q4"
    assert last["positives"] == 0
    assert last["status"] == "undefined"
    assert last["metrics"]["roc_auc"] is None
    assert last["metrics"]["recall"] is None
    assert last["metrics"]["brier"] is not None
    assert [gate["status"] for gate in last["gates"]] == ["undefined", "passed"]
    assert "undefined" in result.output


def test_months_with_several_training_periods(home, project_folder, loans, tmp_path):
    out = tmp_path / "result.json"

    result = backtest("-p", project_folder, "--by", "month", "--train-periods", 3, "-o", out)

    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    assert document["training_periods"] == ["2020-01", "2020-02", "2020-03"]
    assert document["periods"][0]["period"] == "2020-04"
    months = pd.to_datetime(loans["date"]).dt.to_period("M").nunique()
    assert len(document["periods"]) == months - 3


def test_registered_version_scores_every_period_without_training(
    home, project_folder, loans, tmp_path
):
    early = project_folder / "early.csv"
    loans[pd.to_datetime(loans["date"]) < "2021-01-01"].to_csv(early, index=False)
    project, folder = load_project(project_folder)
    train_project(project, folder, make_registry(home), data_path=early)
    out = tmp_path / "result.json"

    result = backtest(
        "-p", project_folder, "--by", "quarter", "--version", "loans@production", "-o", out
    )

    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    assert document["version"] == "loans:1"
    assert document["training_periods"] == []
    assert [period["period"] for period in document["periods"]] == QUARTERS
    # The manifest records the training table's time range: 2020 was seen, 2021 was not.
    assert [period["in_training"] for period in document["periods"]] == [True] * 4 + [False] * 4
    assert sum(period["rows"] for period in document["periods"]) == len(loans)
    assert "scored with loans:1" in flat(result.output)
    assert "trained on" not in flat(result.output)
    assert make_registry(home).list_versions("loans") == [1]


def test_project_without_timestamp_exits_1_naming_it(home, project_folder):
    document = yaml.safe_load((project_folder / PROJECT_FILE).read_text())
    del document["timestamp"]
    document["train"]["split"] = "stratified"
    (project_folder / PROJECT_FILE).write_text(yaml.safe_dump(document))

    result = backtest("-p", project_folder, "--by", "month")

    assert result.exit_code == 1, result.output
    assert "no timestamp column" in flat(result.output)
    assert "timestamp: not set" in flat(result.output)


def test_too_many_training_periods_exits_1(home, project_folder):
    result = backtest("-p", project_folder, "--by", "quarter", "--train-periods", 8)

    assert result.exit_code == 1, result.output
    assert "span 8 quarter(s)" in flat(result.output)


@pytest.mark.parametrize(
    "args",
    [
        ["--version", "loans:1", "--train-periods", "2"],
        ["-o", "result.txt"],
        ["--by", "year"],
        ["--train-periods", "0"],
    ],
)
def test_usage_errors_exit_2(home, project_folder, args):
    result = backtest("-p", project_folder, *args)

    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


def test_unknown_version_exits_1(home, project_folder):
    result = backtest("-p", project_folder, "--version", "loans:7")

    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
