"""The monitoring report and `tabops monitor status|report` over predictions served by the app."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from conftest import HEART_CSV
from tabops.cli.main import app as cli
from tabops.config import Settings, get_settings
from tabops.database import open_database
from tabops.monitoring.alert_store import AlertStore
from tabops.monitoring.alerts import AlertChecker
from tabops.monitoring.labels import LabelStore
from tabops.monitoring.performance import EstimateAccumulator
from tabops.monitoring.report import alert_document, render_report
from tabops.monitoring.summary import Monitor
from tabops.monitoring.windows import Window
from tabops.monitoring_rules import AlertRule, MonitoringSection
from tabops.registry import open_registry
from tabops.server.app import create_app

MODEL = "heart-failure"
SHIFTED = "serum_creatinine"
runner = CliRunner()


@pytest.fixture
def settings(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.setenv("TABOPS_HOME", str(home))
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    yield Settings(home=home, job_workers=0)
    get_settings.cache_clear()


@pytest.fixture
def served(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


def serve(client: TestClient, frame: pd.DataFrame) -> list[dict]:
    records = frame.drop(columns=["DEATH_EVENT"]).to_dict("records")
    answer = client.post(f"/v1/models/{MODEL}/predict/batch", json={"records": records})
    assert answer.status_code == 200, answer.text
    client.app.state.prediction_log.flush()
    return answer.json()["predictions"]


def send_labels(client: TestClient, predictions: list[dict], frame: pd.DataFrame) -> None:
    labels = [
        {"prediction_id": p["prediction_id"], "label": int(y)}
        for p, y in zip(predictions, frame["DEATH_EVENT"], strict=True)
    ]
    answer = client.post(f"/v1/models/{MODEL}/feedback", json={"labels": labels})
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == len(labels)


def shifted(frame: pd.DataFrame) -> pd.DataFrame:
    moved = frame.copy()
    moved[SHIFTED] = moved[SHIFTED] * 4 + 2
    return moved


def check_alerts(settings: Settings) -> None:
    """Check a PSI rule on every feature, as the workers do, so alert states exist."""
    section = MonitoringSection(alerts=[AlertRule(metric="psi", feature="*", above=0.2)])
    engine = open_database(settings)
    try:
        registry = open_registry(settings)
        monitor = Monitor.from_settings(settings, registry, LabelStore(engine, registry))
        AlertChecker(AlertStore(engine), None, monitor.observe, lambda _: section).check(MODEL)
    finally:
        engine.dispose()


@pytest.mark.slow
def test_report_draws_drift_scores_and_performance_of_served_predictions(
    served, settings, tmp_path
):
    heart = pd.read_csv(HEART_CSV)
    start = datetime.now(UTC)
    normal = heart.iloc[:150]
    send_labels(served, serve(served, normal), normal)
    time.sleep(1.2)  # the shifted rows land in a later point of the 1-second series
    moved = shifted(heart.iloc[150:])
    send_labels(served, serve(served, moved)[:60], moved.iloc[:60])
    check_alerts(settings)
    path = tmp_path / "out" / "report.html"
    path.parent.mkdir()

    result = runner.invoke(
        cli,
        [
            "monitor",
            "report",
            MODEL,
            "--since",
            start.isoformat(),
            "--window",
            "1s",
            "-o",
            str(path),
        ],
    )

    assert result.exit_code == 0, result.output
    assert str(path) in result.output
    page = path.read_text(encoding="utf-8")
    assert len(re.findall(r'<img src="data:image/png;base64,', page)) == 3
    assert "http://" not in page
    assert "https://" not in page
    assert "<script" not in page
    for name in heart.columns.drop("DEATH_EVENT"):
        assert name in page
    assert "estimated" in page
    assert "Version 1" in page
    drift_row = re.search(rf'<tr class="(\w+)"><td class="mono">{SHIFTED}</td>', page)
    assert drift_row is not None
    assert drift_row.group(1) == "alert"
    assert "firing" in page  # the PSI rule's state on the shifted feature
    assert "210" in page  # labels received: 150 + 60
    assert not list(path.parent.glob("*.tmp*"))  # written in one atomic step


def test_status_prints_the_shifted_feature_as_alert_and_estimates_as_estimated(served, settings):
    heart = pd.read_csv(HEART_CSV)
    serve(served, shifted(heart))
    check_alerts(settings)

    result = runner.invoke(cli, ["monitor", "status", MODEL, "--window", "1h"])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    drift_line = next(line for line in lines if SHIFTED in line and "psi[" not in line)
    assert "alert" in drift_line
    assert any("(estimated)" in line for line in lines)
    assert any("firing" in line and SHIFTED in line for line in lines)
    assert f"{len(heart)}" in result.output


def test_report_with_one_busy_point_in_a_long_series_draws_every_plot(served, settings, tmp_path):
    serve(served, shifted(pd.read_csv(HEART_CSV).iloc[:80]))
    path = tmp_path / "hours.html"

    result = runner.invoke(
        cli, ["monitor", "report", MODEL, "--since", "2h", "--window", "10m", "-o", str(path)]
    )

    assert result.exit_code == 0, result.output
    page = path.read_text(encoding="utf-8")
    assert page.count('<img src="data:image/png') == 3
    assert "one point per 10m" in page


def test_report_without_predictions_says_so_in_notes(settings, tmp_path):
    path = tmp_path / "empty.html"

    result = runner.invoke(cli, ["monitor", "report", MODEL, "-o", str(path)])

    assert result.exit_code == 0, result.output
    page = path.read_text(encoding="utf-8")
    assert f"No predictions of {MODEL} were logged" in page
    assert "No alert rule has been checked" in page
    assert "<img" not in page


def test_report_and_status_refuse_bad_options_and_unknown_models(settings, tmp_path):
    bad_window = runner.invoke(cli, ["monitor", "status", MODEL, "--window", "soon"])
    bad_since = runner.invoke(cli, ["monitor", "report", MODEL, "--since", "last tuesday"])
    unknown = runner.invoke(cli, ["monitor", "report", "no-such-model", "-o", str(tmp_path / "x")])
    no_version = runner.invoke(cli, ["monitor", "status", MODEL, "--version", "9"])

    assert bad_window.exit_code == 2
    assert "window 'soon'" in bad_window.output
    assert bad_since.exit_code == 2
    assert "--since" in bad_since.output
    assert unknown.exit_code == 1
    assert "no-such-model" in unknown.output
    assert not (tmp_path / "x").exists()
    assert no_version.exit_code == 1
    assert "no version 9" in no_version.output


def test_render_report_escapes_names_and_notes_missing_series_and_labels(served, settings):
    heart = pd.read_csv(HEART_CSV)
    serve(served, heart.iloc[:40])
    engine = open_database(settings)
    try:
        registry = open_registry(settings)
        monitor = Monitor.from_settings(settings, registry, LabelStore(engine, registry))
        summary = monitor.summary(MODEL, Window.parse("1h"))  # one window: no series
        states = [alert_document(state) for state in AlertStore(engine).states(MODEL)]
    finally:
        engine.dispose()
    features = summary["versions"][0]["drift"]["features"]
    features["<b>odd</b> $name"] = features.pop("age")

    page = render_report(summary, states, datetime.now(UTC))

    assert "&lt;b&gt;odd&lt;/b&gt; $name" in page
    assert "<b>odd</b>" not in page
    assert "No point of the series has predictions" in page
    assert "No predictions in the series" in page
    assert "No labels were received" in page
    assert page.count('<img src="data:image/png') == 1  # the score distribution alone


def test_estimates_merged_from_parts_equal_one_pass():
    rng = np.random.default_rng(7)
    p = rng.uniform(size=2_000)
    whole, first, second = (EstimateAccumulator(0.4) for _ in range(3))
    whole.add(p)
    first.add(p[:700])
    second.add(p[700:])

    merged = first.merge(second).result()

    assert merged == pytest.approx(whole.result())
    with pytest.raises(ValueError, match="threshold"):
        first.merge(EstimateAccumulator(0.5))
