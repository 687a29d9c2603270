"""Importing a binary classifier trained elsewhere as a registry version.

The model file (pickle, joblib, skops, or an MLflow scikit-learn folder) is loaded safely
(``tabops.model.foreign``), run on the user's sample to prove it takes it, and stored as a
skops ``Pipeline`` with the checks a trained version carries: golden rows (tolerance 1e-9,
since users compare with their own model), reference statistics, a model card, an ONNX graph
when one reproduces the model, and with labels, metrics and gates.

The threshold defaults to 0.5, the cut-off the model's own ``predict`` uses, so importing
changes no decision. It is not chosen on the sample: the metrics are measured on those rows,
and a cut-off tuned on them would flatter them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tabops.dataset import fingerprint_file, read_table
from tabops.errors import GateFailedError, ModelImportError, Problem
from tabops.model.foreign import load_foreign, load_trusted
from tabops.model.manifest import Manifest, ModelVersion
from tabops.project import METRIC_NAMES, Gate
from tabops.registry.versions import ModelRegistry, check_alias, check_model_name
from tabops.training.import_files import package_import
from tabops.training.import_run import run_on_sample
from tabops.training.import_source import ModelSource, read_model_source

__all__ = [
    "ImportOptions",
    "ImportOutcome",
    "ModelSource",
    "import_model",
    "read_model_source",
]

_GATE = re.compile(r"^\s*(>=|<=|>|<)\s*(-?\d+(?:\.\d+)?)\s*$")


@dataclass(frozen=True)
class ImportOptions:
    """How to import: the labels, the trust given to pickles, the decision and its gates.

    Attributes:
        target: the sample's column of true labels; metrics and gates need it.
        trust_pickle: load a pickle whose globals are outside the allow-list (it still runs
            in a child process, never in this one).
        positive_class: the class a positive decision means; ``classes_[1]`` by default.
        threshold: the decision cut-off; 0.5 by default (what the model's ``predict`` uses).
        gates: metric gates as in ``tabops.yaml``, e.g. ``{"roc_auc": ">= 0.8"}``.
        class_names: display names of the classes, by value as text.
        compile_tolerance: the largest difference from scikit-learn an ONNX graph may show.
        first_alias: an alias the version takes when the model has none of that name.
        description: a line recorded in the manifest and the card.
    """

    target: str | None = None
    trust_pickle: bool = False
    positive_class: Any | None = None
    threshold: float | None = None
    gates: dict[str, str] = field(default_factory=dict)
    class_names: dict[str, str] = field(default_factory=dict)
    compile_tolerance: float = 1e-9
    first_alias: str | None = "production"
    description: str | None = None


@dataclass
class ImportOutcome:
    """The registered version, where it came from, what serves it, and notes for the user."""

    version: ModelVersion
    source: dict[str, Any]
    compiled: str
    notes: list[str]


def import_model(
    path: Path,
    name: str,
    sample: Path,
    registry: ModelRegistry,
    options: ImportOptions = ImportOptions(),  # frozen: a shared default is safe
    progress: Callable[[str], None] | None = None,
) -> ImportOutcome:
    """Import the model at ``path`` as the next version of ``name``, checked on ``sample``.

    Args:
        path: a model file (pickle, joblib, skops) or an MLflow scikit-learn model folder.
        name: the model's name in the registry.
        sample: a CSV, Parquet or SQLite table of rows the model takes (and the labels,
            when ``options.target`` names their column).
        registry: where the version goes.
        options: see ``ImportOptions``.
        progress: called with a line as each step ends.

    Raises:
        RegistryError: an invalid model name or alias.
        ModelImportError: the model cannot be read, is not a binary classifier, or does not
            fit its sample (a missing column, another width, its own error on the rows).
        UnsafeModelError: its pickle names globals outside the allow-list.
        DataError: the sample cannot be read, or its target is not two of the model's classes.
        GateFailedError: a gate failed; nothing was registered.
    """
    say = progress or (lambda _line: None)
    started = time.perf_counter()
    check_model_name(name)
    if options.first_alias is not None:
        check_alias(options.first_alias)
    gates = _parse_gates(options)
    _check_options(options)
    source = read_model_source(path)
    foreign = load_foreign(source.file, trust_pickle=options.trust_pickle)
    estimator = load_trusted(foreign)
    say(f"loaded {foreign.estimator_type} from {source.file.name} ({foreign.source_format})")
    frame = read_table(sample)
    say(f"read {len(frame)} sample rows from {sample.name}")
    run = run_on_sample(foreign, estimator, source, frame, options)
    say(f"the model scores the sample's {len(frame)} rows; {len(run.spec.features)} features")
    evaluated = run.evaluate(gates, options)
    failed = [gate for gate in evaluated if not gate.passed]
    if failed:
        names = ", ".join(f"{g.gate} (got {g.observed:.4f})" for g in failed)
        raise GateFailedError(
            f"gate failed: {names}; nothing was registered",
            [Problem(g.metric, f"{g.observed:.4f} fails {g.gate}") for g in failed],
        )
    files, document = package_import(name, run, source, foreign, sample, fingerprint_file(sample))
    say(f"compiled: {document['compiled']['runtime']}")
    document["training_seconds"] = round(time.perf_counter() - started, 3)
    if options.description:
        document["description"] = options.description
    version = registry.register(
        name, files, Manifest.model_validate(document), first_alias=options.first_alias
    )
    say(f"registered {version.ref}")
    compiled = version.manifest.compiled
    return ImportOutcome(
        version=version,
        source=dict(document["source"]),
        compiled=compiled.runtime if compiled is not None else "scikit-learn",
        notes=list(run.notes),
    )


def _parse_gates(options: ImportOptions) -> list[Gate]:
    """The gates as objects, refused before any work when malformed or without labels."""
    if options.gates and options.target is None:
        raise ModelImportError(
            "gates need labels: give the sample's target column",
            [Problem("target", "required when gates are given")],
        )
    gates = []
    problems = []
    for metric, rule in options.gates.items():
        match = _GATE.match(str(rule))
        if metric not in METRIC_NAMES:
            problems.append(Problem(f"gates.{metric}", f"not a metric ({', '.join(METRIC_NAMES)})"))
        elif match is None:
            problems.append(Problem(f"gates.{metric}", f"{rule!r} is not like '>= 0.75'"))
        else:
            operator: Any = match.group(1)
            gates.append(Gate(metric=metric, operator=operator, value=float(match.group(2))))
    if problems:
        raise ModelImportError("invalid gates", problems)
    return gates


def _check_options(options: ImportOptions) -> None:
    problems = []
    if options.threshold is not None and not 0.0 <= options.threshold <= 1.0:
        problems.append(Problem("threshold", "must lie between 0 and 1"))
    if not (np.isfinite(options.compile_tolerance) and options.compile_tolerance >= 0):
        problems.append(Problem("compile_tolerance", "must be a number of 0 or more"))
    if problems:
        raise ModelImportError("invalid import options", problems)
