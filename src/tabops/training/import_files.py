"""An imported model packaged as a registry version: its files and manifest document."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import skops.io as skops_io

from tabops.dataset import fingerprint_file
from tabops.errors import ArtifactIntegrityError, ModelImportError, Problem
from tabops.model.column_graph import compile_columns
from tabops.model.files import (
    CARD_FILE,
    GOLDEN_FILE,
    GOLDEN_PROBABILITY,
    MODEL_FILE,
    ONNX_FILE,
    REFERENCE_FILE,
    REFERENCE_STATS_FILE,
    TRUSTED_TYPES,
    dump_model,
    frame_to_parquet,
)
from tabops.model.manifest import FORMAT, Manifest, ModelVersion
from tabops.model.predictor import Predictor
from tabops.model.reference_stats import build_reference_stats
from tabops.training.import_card import ImportEvidence, render_import_card
from tabops.training.import_run import GOLDEN_TOLERANCE, SampleRun
from tabops.training.import_source import ModelSource
from tabops.training.package import library_versions

if TYPE_CHECKING:
    from tabops.model.foreign import ForeignModel

_GOLDEN_ROWS = 200
_REFERENCE_ROWS = 1_000
_CHECK_ROWS = 10_000


def package_import(
    name: str,
    run: SampleRun,
    source: ModelSource,
    foreign: ForeignModel,
    sample: Path,
    sample_sha256: str,
) -> tuple[dict[str, bytes], dict[str, Any]]:
    """The version's files and its manifest document (checked by loading it back).

    Raises:
        ModelImportError: the stored files do not reproduce the model (never expected).
    """
    spec, features, probabilities = run.spec, run.features, run.probabilities
    names = spec.feature_names
    rows = len(features)
    golden_rows = np.unique(np.linspace(0, rows - 1, min(_GOLDEN_ROWS, rows)).astype(int))
    golden = features.iloc[golden_rows][names].reset_index(drop=True)
    golden[GOLDEN_PROBABILITY] = probabilities[golden_rows]
    checked = np.union1d(golden_rows, np.arange(min(rows, _CHECK_ROWS)))
    graph, report = compile_columns(
        run.model,
        spec,
        features.iloc[checked],
        probabilities[checked],
        run.tolerance,
    )
    try:
        model_file = dump_model(run.model, foreign.trusted_types)
    except ArtifactIntegrityError as exc:
        raise ModelImportError(
            f"the model holds types tabops will not load when serving: {exc}",
            [Problem("model", "holds types outside the allow-list")],
        ) from exc
    trusted = sorted(set(skops_io.get_untrusted_types(data=model_file)) - TRUSTED_TYPES)
    reference = features.iloc[:_REFERENCE_ROWS][names].reset_index(drop=True)
    if run.target is not None:
        reference[run.target] = run.frame[run.target].iloc[:_REFERENCE_ROWS].to_numpy()
    evaluation = run.evaluation
    metrics = dict(evaluation.metrics) if evaluation is not None else {}
    intervals = {k: list(v) for k, v in evaluation.intervals.items()} if evaluation else {}
    # The sample stands in for the training rows, which tabops never saw.
    stats = build_reference_stats(
        features,
        spec,
        probabilities,
        source="training",
        score_source="test" if evaluation is not None else "reference_sample",
        threshold=run.threshold,
        metrics=metrics,
        intervals=intervals,
        split_rows={"sample": rows},
    )
    source_record = {
        "imported": True,
        "format": foreign.source_format,
        "file": source.file.name,
        "folder": source.folder.name if source.folder is not None else None,
        "sha256": fingerprint_file(source.file),
        "globals": list(foreign.source_globals),
        "estimator_type": foreign.estimator_type,
        "mlflow": source.is_mlflow,
        "mlflow_run_id": source.run_id,
        "mlflow_serialization_format": source.serialization,
    }
    document: dict[str, Any] = {
        "format": FORMAT,
        "task": "binary_classification",
        "target": run.target,
        "classes": {
            "negative": {"value": run.classes[0], "name": run.class_names[0]},
            "positive": {"value": run.classes[1], "name": run.class_names[1]},
        },
        "threshold": run.threshold,
        "threshold_policy": "fixed",
        "threshold_reason": run.threshold_reason,
        "operating_points": {"sample": run.points} if run.points else {},
        "candidate": "imported",
        "split": f"imported: checked on the sample {sample.name}",
        "notes": run.notes,
        "metrics": metrics,
        "intervals": intervals,
        "confusion": dict(evaluation.confusion) if evaluation is not None else {},
        "gates": [gate.model_dump() for gate in run.gates],
        "feature_spec": spec.model_dump(mode="json"),
        "data": {
            "path": sample.name,
            "sha256": sample_sha256,
            "rows": {"total": rows, "sample": rows},
            "positives": {"sample": evaluation.positives} if evaluation is not None else {},
        },
        "golden": {"rows": len(golden), "tolerance": GOLDEN_TOLERANCE},
        "compiled": report.as_manifest(),
        "library_versions": library_versions(),
        "trusted_types": trusted,
        "source": source_record,
    }
    evidence = ImportEvidence(
        name=name,
        target=run.target,
        negative=run.class_names[0],
        positive=run.class_names[1],
        sample_name=sample.name,
        sample_rows=rows,
        estimator_type=foreign.estimator_type,
        threshold=run.threshold,
        threshold_reason=run.threshold_reason,
        notes=run.notes,
        metadata={"sample": sample.name, "sample sha256": sample_sha256, **source_record},
        evaluation=evaluation,
        y=run.labels if run.labels is not None else np.empty(0),
        probability=probabilities[run.labelled] if run.labelled is not None else np.empty(0),
        gates=document["gates"],
        operating_points=run.points,
    )
    files = {
        MODEL_FILE: model_file,
        GOLDEN_FILE: frame_to_parquet(golden),
        REFERENCE_FILE: frame_to_parquet(reference),
        REFERENCE_STATS_FILE: stats.to_json(),
        CARD_FILE: render_import_card(evidence, run.frame, spec).encode(),
    }
    if graph is not None:
        files[ONNX_FILE] = graph
    _load_back(files, document)
    return files, document


def _load_back(files: dict[str, bytes], document: dict[str, Any]) -> None:
    """Load the version as serving will, so nothing that fails there is registered."""
    hashes = {file: hashlib.sha256(data).hexdigest() for file, data in files.items()}
    manifest = Manifest.model_validate({**document, "files": hashes})
    try:
        Predictor.from_files(ModelVersion("import", 0, manifest), files)
    except ArtifactIntegrityError as exc:
        raise ModelImportError(
            f"the stored model does not reproduce the imported one: {exc}",
            [Problem("model", "the stored form scores differently")],
        ) from exc
