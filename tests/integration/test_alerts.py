"""Alert states in the metadata database: one delivery per change of state, even under races."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from prometheus_client import REGISTRY
from sqlalchemy import Engine

from conftest import make_registry, train_heart
from tabops.database import create_database_engine
from tabops.monitoring.alert_store import AlertStore
from tabops.monitoring.alerts import AlertChecker, Observation, evaluate
from tabops.monitoring_rules import AlertRule, MonitoringSection
from tabops.project import PROJECT_FILE, load_project

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PSI = AlertRule(metric="psi", feature="*", above=0.2)
AUC = AlertRule(metric="roc_auc", below=0.8, min_labels=10)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_database_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def store(engine: Engine) -> AlertStore:
    return AlertStore(engine)


def psi_checks(**values: float | None):
    observations = [Observation("psi", name, value, 500) for name, value in values.items()]
    return evaluate([PSI], observations)


def test_each_change_of_state_queues_exactly_one_delivery(store):
    fired = store.apply("churn", 3, psi_checks(age=0.5, sex=0.1), now=T0)
    held = store.apply("churn", 3, psi_checks(age=0.6, sex=0.15), now=T0 + timedelta(hours=1))
    resolved = store.apply("churn", 3, psi_checks(age=0.1, sex=0.1), now=T0 + timedelta(hours=2))
    quiet = store.apply("churn", 3, psi_checks(age=0.05, sex=0.1), now=T0 + timedelta(hours=3))

    assert [(e.event, e.feature, e.value) for e in fired] == [("firing", "age", 0.5)]
    assert held == []
    assert [(e.event, e.feature, e.value) for e in resolved] == [("resolved", "age", 0.1)]
    assert quiet == []
    [event] = resolved
    assert event.fired_at == T0
    assert event.at == T0 + timedelta(hours=2)
    deliveries = store.deliveries("churn")
    assert [(d.event, d.status, d.attempts) for d in deliveries] == [
        ("resolved", "pending", 0),
        ("firing", "pending", 0),
    ]
    assert deliveries[0].id == event.delivery_id
    payload = deliveries[0].payload
    assert payload["model"] == "churn"
    assert payload["version"] == 3
    assert payload["rule"] == "psi[*]>0.2"
    assert payload["feature"] == "age"
    assert payload["threshold"] == 0.2
    assert payload["window"] == "1d"
    assert payload["fired_at"] == T0.isoformat()
    assert payload["resolved_at"] == (T0 + timedelta(hours=2)).isoformat()
    assert "http" not in payload["summary"]
    assert "age" in payload["summary"]


def test_states_keep_the_latest_value_and_the_time_of_the_last_change(store):
    store.apply("churn", 1, psi_checks(age=0.5, sex=0.1), now=T0)
    store.apply("churn", 1, psi_checks(age=0.7, sex=0.1), now=T0 + timedelta(hours=1))

    states = store.states("churn")

    assert [(s.rule, s.feature, s.state, s.value) for s in states] == [
        ("psi[*]>0.2", "age", "firing", 0.7),
        ("psi[*]>0.2", "sex", "ok", 0.1),
    ]
    assert states[0].changed_at == T0
    assert states[0].checked_at == T0 + timedelta(hours=1)


def test_a_check_without_enough_data_keeps_the_state(store):
    store.apply("churn", 1, evaluate([AUC], [Observation("roc_auc", None, 0.6, 900, 50)]), now=T0)
    thin = evaluate([AUC], [Observation("roc_auc", None, 0.95, 900, 3)])

    assert thin[0].is_breached is None
    assert store.apply("churn", 1, thin, now=T0 + timedelta(hours=1)) == []
    [state] = store.states("churn")
    assert (state.feature, state.state, state.value) == (None, "firing", 0.6)
    assert len(store.deliveries("churn")) == 1


def test_versions_and_models_keep_their_own_states(store):
    store.apply("churn", 1, psi_checks(age=0.5), now=T0)
    events = store.apply("churn", 2, psi_checks(age=0.05), now=T0)
    other = store.apply("fraud", 1, psi_checks(age=0.5), now=T0)

    assert events == []
    assert [(e.model, e.event) for e in other] == [("fraud", "firing")]
    assert [(s.version, s.state) for s in store.states("churn")] == [(1, "firing"), (2, "ok")]


def test_without_a_sender_deliveries_are_recorded_as_logged(store):
    store.apply("churn", 1, psi_checks(age=0.5), now=T0, is_sent=False)

    [delivery] = store.deliveries("churn")

    assert delivery.status == "logged"
    assert store.due_deliveries(T0 + timedelta(days=1), 10) == []


def test_concurrent_checkers_queue_one_delivery_per_change(database_url):
    engines = [create_database_engine(database_url) for _ in range(2)]
    stores = [AlertStore(engine) for engine in engines]
    rounds = 12
    barrier = threading.Barrier(len(stores))
    events: list[list[str]] = [[] for _ in stores]
    errors: list[BaseException] = []

    def check(index: int) -> None:
        try:
            for round_ in range(rounds):
                value = 0.5 if round_ % 2 == 0 else 0.05
                barrier.wait(timeout=30)
                moment = T0 + timedelta(minutes=round_)
                applied = stores[index].apply("churn", 1, psi_checks(age=value), now=moment)
                events[index] += [event.event for event in applied]
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=check, args=(index,)) for index in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    try:
        assert not errors, errors
        deliveries = stores[0].deliveries("churn", limit=100)
        assert len(deliveries) == rounds
        assert sorted(events[0] + events[1]) == sorted(d.event for d in deliveries)
        ordered = sorted(deliveries, key=lambda d: d.created_at)
        assert [d.event for d in ordered] == ["firing", "resolved"] * (rounds // 2)
    finally:
        for engine in engines:
            engine.dispose()


def section_of(*rules: AlertRule, window: str = "1d") -> MonitoringSection:
    return MonitoringSection(window=window, alerts=list(rules))


def firing_gauge(model: str, version: int, rule: str, feature: str) -> float | None:
    labels = {"model": model, "version": str(version), "rule": rule, "feature": feature}
    return REGISTRY.get_sample_value("tabops_alert_firing", labels)


def test_checker_checks_each_version_logs_transitions_and_sets_the_gauge(store, caplog):
    traffic = AlertRule(name="traffic", metric="rows", below=10, window="1h")
    asked: list[tuple[str, set[str]]] = []
    measured = {"age": 0.5}

    def observe(model, windows):
        asked.append((model, set(windows)))
        psi = [Observation("psi", name, value, 500) for name, value in measured.items()]
        return [(4, [*psi, Observation("rows", None, 3, 3, window="1h")])]

    checker = AlertChecker(store, None, observe, lambda model: section_of(PSI, traffic))

    with caplog.at_level(logging.INFO, logger="tabops.alerts"):
        first = checker.check("gauge-model", now=T0)
        measured["age"] = 0.01
        second = checker.check("gauge-model", now=T0 + timedelta(hours=1))

    assert asked == [("gauge-model", {"1d", "1h"})] * 2
    assert sorted((e.event, e.rule) for e in first) == [
        ("firing", "psi[*]>0.2"),
        ("firing", "traffic"),
    ]
    assert [(e.event, e.rule, e.version) for e in second] == [("resolved", "psi[*]>0.2", 4)]
    levels = [(r.levelname, r.getMessage().split(":")[0]) for r in caplog.records]
    assert levels.count(("WARNING", "alert firing")) == 2
    assert levels.count(("INFO", "alert resolved")) == 1
    assert firing_gauge("gauge-model", 4, "traffic", "") == 1
    assert firing_gauge("gauge-model", 4, "psi[*]>0.2", "age") == 0
    assert [d.status for d in store.deliveries("gauge-model")] == ["logged"] * 3


def test_check_all_goes_on_after_a_model_that_fails(store, caplog):
    def observe(model, windows):
        if model == "broken":
            raise OSError("unreadable log segment")
        return [(1, [Observation("psi", "age", 0.9, 500)])]

    checker = AlertChecker(store, None, observe, lambda model: section_of(PSI))

    with caplog.at_level(logging.ERROR, logger="tabops.alerts"):
        events = checker.check_all(["broken", "fine"], now=T0)

    assert [(e.model, e.event) for e in events] == [("fine", "firing")]
    assert "broken" in caplog.text


def test_checker_skips_a_model_without_rules(store):
    def observe(model, windows):
        raise AssertionError("a model without rules is not observed")

    checker = AlertChecker(store, None, observe, lambda model: MonitoringSection())

    assert checker.check("quiet", now=T0) == []


@pytest.mark.slow
def test_monitoring_section_is_stored_in_the_manifest_of_a_trained_version(project_dir, tmp_path):
    path = project_dir / PROJECT_FILE
    document = yaml.safe_load(path.read_text())
    document["monitoring"] = {
        "psi_alert": 0.25,
        "window": "12h",
        "alerts": [
            {"metric": "psi", "feature": "age", "above": 0.25},
            {"name": "traffic", "metric": "rows", "below": 10, "window": "1h"},
        ],
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    project, folder = load_project(project_dir)
    home = tmp_path / "home"

    outcome = train_heart(project, folder, home)

    stored = make_registry(home).get_version(project.name, outcome.version.version).manifest
    assert stored.monitoring == {
        "psi_alert": 0.25,
        "window": "12h",
        "alerts": [
            {"metric": "psi", "feature": "age", "above": 0.25},
            {"name": "traffic", "metric": "rows", "below": 10.0, "window": "1h"},
        ],
    }
    section = MonitoringSection.from_manifest(stored.monitoring)
    assert section == project.monitoring
    assert [rule.key for rule in section.alerts] == ["psi[age]>0.25", "traffic"]
