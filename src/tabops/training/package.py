"""Packaging a training result as a registry version: files, manifest and model card."""

from __future__ import annotations

import platform
import subprocess
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import pandas as pd

from tabops import __version__
from tabops.model.compiled import compile_model
from tabops.model.files import (
    CARD_FILE,
    GOLDEN_FILE,
    GOLDEN_PROBABILITY,
    GOLDEN_TOLERANCE,
    MODEL_FILE,
    ONNX_FILE,
    REFERENCE_FILE,
    REFERENCE_STATS_FILE,
    dump_model,
    frame_to_parquet,
)
from tabops.model.manifest import FORMAT, Manifest
from tabops.project import Project
from tabops.schema import python_value
from tabops.training.card import DataProfile, ModelCard, render_model_card
from tabops.training.profile import profile_columns
from tabops.training.splits import parse_times
from tabops.training.train import TrainingResult

_LIBRARIES = (
    "scikit-learn",
    "imbalanced-learn",
    "numpy",
    "pandas",
    "scipy",
    "skops",
    "pyarrow",
    "skl2onnx",
    "onnx",
    "onnxruntime",
    "lightgbm",
    "xgboost",
    "xgboost-cpu",
    "onnxmltools",
)


def library_versions() -> dict[str, str]:
    """Versions of Python, tabops and the libraries a model depends on."""
    versions = {"python": platform.python_version(), "tabops": __version__}
    for name in _LIBRARIES:
        try:
            versions[name] = package_version(name)
        except PackageNotFoundError:
            continue
    return versions


def git_commit(folder: Path) -> str | None:
    """The commit checked out in ``folder``, when it is inside a git work tree."""
    try:
        completed = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return completed.stdout.strip() or None if completed.returncode == 0 else None


def feature_requirements(project: Project) -> dict[str, Any] | None:
    """What serving by entity needs: the store's view, its entity, the model's features.

    None for a project without an entity column, which cannot be served by entity.
    """
    if project.entity is None:
        return None
    definitions = project.features
    return {
        "view": project.view,
        "entity": project.entity,
        "timestamp": project.timestamp,
        "names": project.schema_.feature_names,
        "definitions": definitions.describe() if definitions else [],
        "fingerprint": definitions.fingerprint() if definitions else None,
    }


def package_version_files(
    project: Project,
    result: TrainingResult,
    frame: pd.DataFrame,
    data_path: Path,
    data_fingerprint: str,
) -> tuple[dict[str, bytes], Manifest]:
    """The files (model, golden rows, reference sample and statistics, card) and manifest.

    The feature spec comes from ``result.project``, the project as trained: the leak guards
    may have left columns out, and the served model must expect exactly its own features.
    """
    negative, positive = python_value(result.negative_class), python_value(result.positive_class)
    names = {
        "negative": project.class_names.get(str(negative), str(negative)),
        "positive": project.class_names.get(str(positive), str(positive)),
    }
    best = result.candidate
    graph, compiled = _compile(result)
    document: dict[str, Any] = {
        "format": FORMAT,
        "project": project.name,
        "task": "binary_classification",
        "target": project.target,
        "entity": project.entity,
        "timestamp": project.timestamp,
        "classes": {
            "negative": {"value": negative, "name": names["negative"]},
            "positive": {"value": positive, "name": names["positive"]},
        },
        "threshold": result.threshold.threshold,
        "threshold_policy": result.threshold.policy,
        "threshold_reason": result.threshold.reason,
        "operating_points": {
            "validation": [point.model_dump() for point in result.operating_points],
            "test": [point.model_dump() for point in result.test_operating_points],
        },
        "candidate": best.name,
        "params": best.params,
        "imbalance": project.train.imbalance,
        "calibration": result.calibration,
        "split": result.split.description,
        "notes": result.notes,
        "metrics": result.test.metrics,
        "intervals": {k: list(v) for k, v in result.test.intervals.items()},
        "validation_metrics": result.validation.metrics,
        "confusion": result.test.confusion,
        "leaderboard": [_leaderboard_row(score) for score in result.leaderboard],
        "guards": [finding.model_dump() for finding in result.guards],
        "imputation": result.imputation,
        "importance": [list(item) for item in result.importance],
        "gates": [gate.model_dump() for gate in result.gates],
        "feature_spec": result.project.schema_.model_dump(mode="json"),
        "rename": dict(project.rename),
        "features": feature_requirements(result.project),
        "monitoring": (
            project.monitoring.model_dump(mode="json", exclude_none=True)
            if project.monitoring is not None
            else None
        ),
        "data": {
            "path": data_path.name,
            "sha256": data_fingerprint,
            "rows": result.rows,
            "positives": result.positives,
            **_time_range(frame, project),
        },
        "training_seconds": round(result.training_seconds, 3),
        "stage_seconds": {k: round(v, 3) for k, v in result.stage_seconds.items()},
        "stage_peak_rss_mb": {k: round(v, 1) for k, v in result.stage_peak_rss_mb.items()},
        "search_rows": result.search_rows,
        "golden": {"rows": len(result.golden), "tolerance": GOLDEN_TOLERANCE},
        "compiled": compiled,
        "library_versions": library_versions(),
        "git_commit": git_commit(data_path.parent),
    }
    manifest = Manifest.model_validate(document)
    card = ModelCard(
        name=project.name,
        created=datetime.now(UTC).isoformat(),
        target=project.target,
        negative_class=names["negative"],
        positive_class=names["positive"],
        profile=DataProfile(
            rows=result.rows["total"],
            rows_by_split={k: v for k, v in result.rows.items() if k != "total"},
            positives_by_split=result.positives,
            columns=profile_columns(frame, result.project.schema_),
        ),
        guards=manifest.guards,
        notes=list(result.notes),
        leaderboard=manifest.leaderboard,
        chosen=best.name,
        chosen_reason=(
            f"highest mean cross-validated PR AUC ({best.pr_auc_mean:.3f} ± "
            f"{best.pr_auc_std:.3f}) of {len(result.leaderboard)} candidates"
        ),
        split=result.split.description,
        imbalance=_describe_imbalance(project.train.imbalance),
        calibration=result.calibration,
        threshold=result.threshold.threshold,
        threshold_policy=result.threshold.policy,
        threshold_reason=result.threshold.reason,
        threshold_warnings=list(result.threshold_warnings),
        operating_points=manifest.operating_points,
        metrics=result.test.metrics,
        intervals=result.test.intervals,
        confusion=result.test.confusion,
        y_test=result.y_test,
        p_test=result.p_test,
        importance=result.importance,
        gates=manifest.gates,
        metadata={
            "data": data_path.name,
            "data sha256": data_fingerprint,
            "rows": result.rows["total"],
            "training seconds": manifest.training_seconds,
            **{f"{stage} (s)": round(v, 1) for stage, v in manifest.stage_seconds.items()},
            "search rows": manifest.search_rows,
            "git commit": manifest.git_commit,
            **{f"{name} version": v for name, v in manifest.library_versions.items()},
        },
    )
    files = {
        MODEL_FILE: dump_model(result.model),
        GOLDEN_FILE: frame_to_parquet(result.golden),
        REFERENCE_FILE: frame_to_parquet(result.reference),
        CARD_FILE: render_model_card(card).encode(),
    }
    if graph is not None:
        files[ONNX_FILE] = graph
    if result.reference_stats is not None:
        files[REFERENCE_STATS_FILE] = result.reference_stats.to_json()
    return files, manifest


def _compile(result: TrainingResult) -> tuple[bytes | None, dict[str, Any]]:
    """The ONNX graph, checked on the golden rows and the reference sample."""
    golden = result.golden.drop(columns=[GOLDEN_PROBABILITY])
    checks = pd.concat([golden, result.reference[golden.columns]], ignore_index=True)
    expected = result.model.predict_proba(checks)[:, 1]
    graph, report = compile_model(result.model, checks, expected)
    return graph, report.as_manifest()


def _time_range(frame: pd.DataFrame, project: Project) -> dict[str, str]:
    """The earliest and latest readable row time of the table, as manifest ``data`` keys."""
    if project.timestamp is None or project.timestamp not in frame.columns:
        return {}
    times = parse_times(frame[project.timestamp]).dropna()
    if times.empty:
        return {}
    return {
        "first_time": times.min().tz_localize(UTC).isoformat(),
        "last_time": times.max().tz_localize(UTC).isoformat(),
    }


def _leaderboard_row(score: Any) -> dict[str, Any]:
    return {
        "name": score.name,
        "params": score.params,
        "pr_auc_mean": score.pr_auc_mean,
        "pr_auc_std": score.pr_auc_std,
        "roc_auc_mean": score.roc_auc_mean,
        "roc_auc_std": score.roc_auc_std,
        "fit_seconds": score.fit_seconds,
        "settings_tried": score.settings_tried,
    }


def _describe_imbalance(imbalance: str) -> str:
    return {
        "class_weight": "class weights balanced in every candidate",
        "undersample": "random under-sampling of the majority class, inside training folds only",
        "smote": "SMOTE over-sampling of the minority class, inside training folds only",
        "none": "none",
    }[imbalance]
