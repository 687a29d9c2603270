"""The model card of an imported version: what tabops measured, and what it cannot know."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from tabops.schema import FeatureSpec
from tabops.training.card import DataProfile, ModelCard, render_model_card
from tabops.training.evaluate import EvaluationReport
from tabops.training.profile import profile_columns


@dataclass
class ImportEvidence:
    """What an import measured on its sample, for the card and the manifest."""

    name: str
    target: str | None
    negative: str
    positive: str
    sample_name: str
    sample_rows: int
    estimator_type: str
    threshold: float
    threshold_reason: str
    notes: list[str]
    metadata: dict[str, Any]
    evaluation: EvaluationReport | None = None
    y: np.ndarray = field(default_factory=lambda: np.empty(0))
    probability: np.ndarray = field(default_factory=lambda: np.empty(0))
    gates: list[dict[str, Any]] = field(default_factory=list)
    operating_points: list[dict[str, Any]] = field(default_factory=list)


def render_import_card(evidence: ImportEvidence, sample: pd.DataFrame, spec: FeatureSpec) -> str:
    """The card as HTML; without labels it says no metric could be measured."""
    evaluation = evidence.evaluation
    notes = list(evidence.notes)
    if evaluation is None:
        notes.append(
            "imported without a target column: no metric, confusion matrix or gate could be "
            "measured; import again with a labelled sample to see them"
        )
        positives: dict[str, int] = {}
    else:
        notes.append(
            f"metrics and operating points are measured on the labelled sample "
            f"{evidence.sample_name} ({evidence.sample_rows} rows); the model was trained "
            "elsewhere, so tabops cannot tell whether these rows were held out from it"
        )
        positives = {"sample": evaluation.positives}
    card = ModelCard(
        name=evidence.name,
        created=datetime.now(UTC).isoformat(),
        target=evidence.target or "(no target column given)",
        negative_class=evidence.negative,
        positive_class=evidence.positive,
        profile=DataProfile(
            rows=evidence.sample_rows,
            rows_by_split={"sample": evidence.sample_rows},
            positives_by_split=positives,
            columns=profile_columns(sample, spec),
        ),
        guards=[],
        notes=notes,
        leaderboard=[],
        chosen=f"imported {evidence.estimator_type.rsplit('.', 1)[-1]}",
        chosen_reason=(
            f"imported: a {evidence.estimator_type} trained elsewhere; tabops ran no "
            "candidate search"
        ),
        split=f"imported: no split; checked on the sample {evidence.sample_name}",
        imbalance="as the model was trained elsewhere",
        calibration={"method": "none", "kept": False, "brier_before": _brier(evaluation)},
        threshold=evidence.threshold,
        threshold_policy="fixed at import",
        threshold_reason=evidence.threshold_reason,
        metrics=dict(evaluation.metrics) if evaluation is not None else {},
        intervals=dict(evaluation.intervals) if evaluation is not None else {},
        confusion=dict(evaluation.confusion) if evaluation is not None else {},
        y_test=evidence.y,
        p_test=evidence.probability,
        importance=[],
        gates=evidence.gates,
        metadata=evidence.metadata,
        operating_points={"validation": evidence.operating_points},
    )
    return render_model_card(card)


def _brier(evaluation: EvaluationReport | None) -> float | None:
    return evaluation.metrics.get("brier") if evaluation is not None else None
