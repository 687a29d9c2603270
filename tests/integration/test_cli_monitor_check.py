"""``tabops monitor check``: a version's own rules checked on demand, each change reported once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from conftest import HEART_CSV, copy_fast_example, make_registry
from tabops.cli.main import app as cli
from tabops.config import Settings, get_settings
from tabops.project import load_project
from tabops.server.app import create_app
from tabops.training.register import train_project

MODEL = "heart-failure"
runner = CliRunner()


@pytest.fixture
def watched_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A home whose only version was trained with a PSI rule on every feature."""
    folder = copy_fast_example(tmp_path / "project")
    path = folder / "tabops.yaml"
    document = yaml.safe_load(path.read_text())
    document["monitoring"] = {"alerts": [{"metric": "psi", "feature": "*", "above": 0.2}]}
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    home = tmp_path / "home"
    train_project(*load_project(folder), make_registry(home))
    monkeypatch.setenv("TABOPS_HOME", str(home))
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


def serve_older_patients(home: Path) -> None:
    frame = pd.read_csv(HEART_CSV).drop(columns=["DEATH_EVENT"])
    records = frame.assign(age=(frame["age"] + 20).clip(upper=95)).to_dict("records")
    with TestClient(create_app(Settings(home=home, job_workers=0))) as client:
        answer = client.post(f"/v1/models/{MODEL}/predict/batch", json={"records": records})
        assert answer.status_code == 200, answer.text


@pytest.mark.slow
def test_check_reports_a_firing_alert_once(watched_home):
    serve_older_patients(watched_home)  # the log is written when the app shuts down

    first = runner.invoke(cli, ["monitor", "check", MODEL])
    again = runner.invoke(cli, ["monitor", "check"])

    assert first.exit_code == 0, first.output
    firing = [line for line in first.output.splitlines() if "firing" in line]
    assert len(firing) == 1
    assert "age" in firing[0]
    assert again.exit_code == 0, again.output
    assert "no alert fired or resolved" in again.output


def test_check_of_an_unknown_model_fails_with_its_name(watched_home):
    result = runner.invoke(cli, ["monitor", "check", "no-such-model"])
    assert result.exit_code == 1
    assert "no-such-model" in result.output
