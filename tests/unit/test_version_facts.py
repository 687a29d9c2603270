"""What the model page reads of a manifest: the facts of a version, odd fields left out."""

from __future__ import annotations

from tabops.server.ui.version_facts import GateResult, facts_of


def test_facts_of_a_trained_version():
    facts = facts_of(
        3,
        {
            "created": "2026-01-02T03:04:05+00:00",
            "metrics": {"roc_auc": 0.9, "f1": 1, "odd": "high", "flag": True},
            "gates": [
                {"gate": "roc_auc >= 0.8", "observed": 0.9, "passed": True},
                {"gate": "f1 >= 0.95", "observed": 0.5, "passed": False},
            ],
            "compiled": {"status": "compiled", "runtime": "onnxruntime"},
            "candidate": "logistic_regression",
            "threshold": 0.4,
            "leaderboard": [{"name": "logistic_regression"}, "not a row"],
            "files": {"card.html": "abc"},
        },
    )

    assert facts.version == 3
    assert facts.metrics == {"roc_auc": 0.9, "f1": 1.0}
    assert facts.gates[1] == GateResult("f1 >= 0.95", 0.5, passed=False)
    assert facts.gates_failed == 1
    assert (facts.runtime, facts.source, facts.candidate) == (
        "onnxruntime",
        "trained",
        "logistic_regression",
    )
    assert facts.threshold == 0.4
    assert facts.leaderboard == [{"name": "logistic_regression"}]
    assert facts.has_card


def test_facts_of_an_imported_uncompiled_version_with_missing_fields():
    facts = facts_of(
        1,
        {
            "source": {"imported": True, "format": "joblib", "mlflow": True},
            "compiled": {"status": "not_compiled", "reason": "no converter for the model"},
            "metrics": "none",
            "gates": None,
            "threshold": "0.5",
        },
    )

    assert facts.source == "imported (MLflow, joblib)"
    assert (facts.runtime, facts.runtime_detail) == ("scikit-learn", "no converter for the model")
    assert (facts.metrics, facts.gates, facts.threshold, facts.created) == ({}, [], None, None)
    assert not facts.has_card
