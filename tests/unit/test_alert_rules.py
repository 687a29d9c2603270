"""Alert rules in the project file, and their evaluation against observations."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from tabops.errors import ProjectError
from tabops.monitoring.alerts import Observation, evaluate
from tabops.monitoring_rules import (
    AlertRule,
    MonitoringSection,
    parse_window,
    window_rows,
)
from tabops.project import PROJECT_FILE, load_project


def write_monitoring(folder: Path, section: Any) -> None:
    path = folder / PROJECT_FILE
    document = yaml.safe_load(path.read_text())
    document["monitoring"] = section
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def load_problems(folder: Path) -> list[tuple[str, str]]:
    with pytest.raises(ProjectError) as caught:
        load_project(folder)
    return [(problem.field, problem.problem) for problem in caught.value.problems]


def test_project_reads_the_monitoring_section_of_the_brief(project_dir):
    write_monitoring(
        project_dir,
        {
            "psi_warn": 0.1,
            "psi_alert": 0.2,
            "window": "1d",
            "alerts": [
                {"metric": "psi", "feature": "*", "above": 0.2},
                {"metric": "roc_auc", "below": 0.8, "min_labels": 200},
                {"metric": "estimated_precision", "below": 0.5},
                {"name": "traffic", "metric": "rows", "below": 10, "window": "1h"},
            ],
        },
    )

    project, _ = load_project(project_dir)

    section = project.monitoring
    assert section is not None
    assert [rule.key for rule in section.alerts] == [
        "psi[*]>0.2",
        "roc_auc<0.8",
        "estimated_precision<0.5",
        "traffic",
    ]
    assert section.windows() == {"1d", "1h"}
    assert section.alerts[1].required_labels == 200


def test_project_without_monitoring_section_has_none(project_dir):
    project, _ = load_project(project_dir)

    assert project.monitoring is None


@pytest.mark.parametrize(
    ("rule", "field", "words"),
    [
        ({"metric": "psy", "feature": "age", "above": 0.2}, "monitoring.alerts.0.metric", "psy"),
        ({"metric": "psi", "feature": "age"}, "monitoring.alerts.0", "'above', 'below'"),
        ({"metric": "roc_auc", "feature": "age", "below": 0.7}, "monitoring.alerts.0", "feature"),
        ({"metric": "ks", "above": 0.3}, "monitoring.alerts.0", "per feature"),
        ({"metric": "psi", "feature": "*", "above": 0.2, "min_labels": 5}, "monitoring.alerts.0",
         "min_labels"),
        ({"metric": "rows", "below": 10, "min_rows": 5}, "monitoring.alerts.0", "min_rows"),
        ({"metric": "rows", "below": 10, "window": "1 day"}, "monitoring.alerts.0.window",
         "window"),
        ({"metric": "rows", "below": 10, "colour": "red"}, "monitoring.alerts.0.colour",
         "not permitted"),
        ({"metric": "rows", "below": math.nan}, "monitoring.alerts.0.below", "finite"),
        ({"name": "no spaces", "metric": "rows", "below": 1}, "monitoring.alerts.0.name",
         "pattern"),
    ],
)  # fmt: skip
def test_project_refuses_a_bad_rule_naming_its_field(project_dir, rule, field, words):
    write_monitoring(project_dir, {"alerts": [rule]})

    problems = load_problems(project_dir)

    assert any(where == field and words in problem for where, problem in problems), problems


def test_project_refuses_a_rule_on_a_feature_not_in_the_schema(project_dir):
    write_monitoring(project_dir, {"alerts": [{"metric": "psi", "feature": "agee", "above": 1}]})

    problems = load_problems(project_dir)

    assert any("agee" in problem for _, problem in problems), problems


def test_project_refuses_two_rules_with_the_same_key(project_dir):
    rule = {"metric": "roc_auc", "below": 0.7}
    write_monitoring(project_dir, {"alerts": [rule, rule]})

    problems = load_problems(project_dir)

    assert any("roc_auc<0.7" in problem for _, problem in problems), problems


def test_project_refuses_psi_warn_above_psi_alert(project_dir):
    write_monitoring(project_dir, {"psi_warn": 0.3, "psi_alert": 0.2})

    problems = load_problems(project_dir)

    assert any("psi_warn" in problem for _, problem in problems), problems


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("15m", 900), ("1h", 3600), ("7d", 604_800), ("2w", 1_209_600)],
)
def test_parse_window_reads_a_count_and_a_unit(text, seconds):
    assert parse_window(text).total_seconds() == seconds


@pytest.mark.parametrize(
    "text", ["", "1", "d", "0d", "-1d", "1.5h", "1 d", "1y", "400d", "1d\n", "\uff11d"]
)
def test_parse_window_refuses_anything_else(text):
    with pytest.raises(ValueError, match="window"):
        parse_window(text)


def test_window_rows_reads_a_count_of_predictions_and_nothing_else():
    assert window_rows("5000") == 5000
    assert window_rows("1d") is None
    assert window_rows("5000\n") is None
    assert window_rows("\uff15\uff10") is None
    for text in ("0", "10000001"):
        with pytest.raises(ValueError, match="count of predictions"):
            window_rows(text)


def test_a_rule_may_be_checked_on_the_latest_predictions():
    section = MonitoringSection(
        window="5000", alerts=[AlertRule(metric="psi", feature="*", above=0.2, window="200")]
    )

    assert section.windows() == {"200"}
    with pytest.raises(ValidationError, match="count of predictions"):
        MonitoringSection(window="0")


def test_rule_key_is_its_name_or_stable_text_of_its_fields():
    named = AlertRule(name="drift", metric="psi", feature="*", above=0.2)
    derived = AlertRule(metric="calibration_error", above=0.05, below=0.0, window="6h")
    long_feature = AlertRule(metric="psi", feature="x" * 150, above=0.2)

    assert named.key == "drift"
    assert derived.key == "calibration_error>0.05<0@6h"
    assert AlertRule.model_validate(derived.model_dump()).key == derived.key
    assert long_feature.key.startswith("psi#")
    assert long_feature.key == AlertRule(metric="psi", feature="x" * 150, above=0.2).key
    assert len(long_feature.key) <= 120


def test_section_round_trips_through_a_manifest_document():
    section = MonitoringSection(
        window="12h", alerts=[AlertRule(metric="rows", below=5, window="1h")]
    )

    stored = section.model_dump(mode="json", exclude_none=True)

    assert MonitoringSection.from_manifest(stored) == section
    assert MonitoringSection.from_manifest(None) == MonitoringSection()
    with pytest.raises(ValidationError):
        MonitoringSection.from_manifest({"alerts": [{"metric": "nope", "above": 1}]})


def observe(metric, feature, value, rows=1000, labels=0, window="1d"):
    return Observation(metric, feature, value, rows, labels, window)


def test_evaluate_checks_every_observed_feature_for_a_star_rule():
    rule = AlertRule(metric="psi", feature="*", above=0.2)
    observations = [
        observe("psi", "age", 0.35),
        observe("psi", "sex", 0.05),
        observe("psi", "time", 0.2),  # on the bound: not above it
        observe("ks", "age", 0.9),
    ]

    checks = evaluate([rule], observations)

    assert [(c.feature, c.value, c.is_breached) for c in checks] == [
        ("age", 0.35, True),
        ("sex", 0.05, False),
        ("time", 0.2, False),
    ]
    assert {c.rule_key for c in checks} == {"psi[*]>0.2"}


def test_evaluate_a_feature_rule_sees_only_its_feature():
    rule = AlertRule(metric="psi", feature="sex", above=0.2)

    [check] = evaluate([rule], [observe("psi", "age", 0.9), observe("psi", "sex", 0.1)])

    assert (check.feature, check.is_breached) == ("sex", False)


def test_evaluate_without_enough_rows_or_labels_decides_nothing():
    drift = AlertRule(metric="psi", feature="*", above=0.2)
    strict = AlertRule(metric="wasserstein", feature="*", above=0.2, min_rows=5000)
    auc = AlertRule(metric="roc_auc", below=0.8, min_labels=200)
    observations = [
        observe("psi", "age", 0.9, rows=99),
        observe("psi", "sex", 0.9, rows=100),
        observe("wasserstein", "age", 0.9, rows=4999),
        observe("roc_auc", None, 0.5, rows=10_000, labels=199),
    ]

    checks = evaluate([drift, strict, auc], observations)

    assert [(c.rule_key, c.feature, c.is_breached) for c in checks] == [
        ("psi[*]>0.2", "age", None),
        ("psi[*]>0.2", "sex", True),
        ("wasserstein[*]>0.2", "age", None),
        ("roc_auc<0.8", None, None),
    ]
    assert "99 rows" in (checks[0].reason or "")
    assert "199 labels" in (checks[3].reason or "")


def test_evaluate_performance_rules_default_to_100_labels():
    rule = AlertRule(metric="pr_auc", below=0.5)

    few, enough = (
        evaluate([rule], [observe("pr_auc", None, 0.3, rows=5, labels=labels)])[0]
        for labels in (99, 100)
    )

    assert few.is_breached is None
    assert enough.is_breached is True


def test_evaluate_a_rule_without_observation_or_value_decides_nothing():
    rules = [
        AlertRule(metric="roc_auc", below=0.8, min_labels=1),
        AlertRule(metric="estimated_f1", below=0.5),
        AlertRule(metric="score_psi", above=0.2),
        AlertRule(metric="brier", above=0.3, min_labels=1),
    ]
    observations = [
        observe("roc_auc", None, None, labels=500),
        observe("estimated_f1", None, math.nan),
        observe("brier", None, math.inf, labels=500),
    ]

    checks = evaluate(rules, observations)

    assert [(c.is_breached, c.reason) for c in checks] == [
        (None, "no value"),
        (None, "no value"),
        (None, "not observed"),
        (None, "no value"),
    ]


def test_evaluate_matches_each_rule_with_its_own_window():
    traffic = AlertRule(name="traffic", metric="rows", below=10, window="1h")
    daily = AlertRule(metric="rows", below=1000)
    observations = [
        observe("rows", None, 3, rows=3, window="1h"),
        observe("rows", None, 5000, rows=5000, window="12h"),
    ]

    checks = evaluate([traffic, daily], observations, default_window="12h")

    assert [(c.rule_key, c.window, c.value, c.is_breached) for c in checks] == [
        ("traffic", "1h", 3, True),
        ("rows<1000", "12h", 5000, False),
    ]


def test_evaluate_a_rule_with_both_bounds_fires_outside_either():
    rule = AlertRule(metric="estimated_precision", above=0.95, below=0.5)

    states = [
        evaluate([rule], [observe("estimated_precision", None, value)])[0].is_breached
        for value in (0.4, 0.7, 0.99)
    ]

    assert states == [True, False, True]
