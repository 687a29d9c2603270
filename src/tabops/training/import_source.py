"""Where an imported model comes from: one model file, or an MLflow scikit-learn model folder.

An MLflow model folder holds an ``MLmodel`` YAML file naming the model file (its ``sklearn``
flavor's ``pickled_model``), how it was serialised, the run that logged it and, often, a
signature: ``signature.inputs`` is a JSON string listing the input columns, each with a
``name`` and a ``type`` (``double``, ``float``, ``long``, ``integer``, ``boolean``,
``string``...), or one tensor with a dtype and a shape.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tabops.errors import ModelImportError, Problem
from tabops.schema import Kind

MLMODEL = "MLmodel"
SIGNATURE_KINDS = {
    "double": Kind.NUMERIC,
    "float": Kind.NUMERIC,
    "long": Kind.INTEGER,
    "integer": Kind.INTEGER,
    "boolean": Kind.BOOLEAN,
    "string": Kind.CATEGORICAL,
}
"""MLflow column types tabops can serve, and the kind of feature each becomes."""


@dataclass(frozen=True)
class SignatureColumn:
    """One input column of an MLflow signature."""

    name: str
    type: str

    @property
    def kind(self) -> Kind:
        """The feature kind the column becomes."""
        return SIGNATURE_KINDS[self.type]


@dataclass(frozen=True)
class ModelSource:
    """The model file to load, and what its MLflow folder (if any) says about it.

    Attributes:
        file: the model file (pickle, joblib or skops).
        folder: the MLflow model folder, or None for a bare file.
        serialization: the folder's ``serialization_format`` (``cloudpickle``, ``pickle``...).
        inputs: the signature's input columns, in order; None without a column signature.
        tensor_width: the width of a tensor signature (``[-1, width]``), when it has one.
        run_id: the MLflow run that logged the model.
    """

    file: Path
    folder: Path | None = None
    serialization: str | None = None
    inputs: tuple[SignatureColumn, ...] | None = None
    tensor_width: int | None = None
    run_id: str | None = None
    flavor: dict[str, Any] = field(default_factory=dict)

    @property
    def is_mlflow(self) -> bool:
        """Whether the model came in an MLflow model folder."""
        return self.folder is not None


def read_model_source(path: Path) -> ModelSource:
    """The model file at ``path``, or the one an MLflow model folder at ``path`` names.

    Raises:
        ModelImportError: nothing at ``path``; a folder without an ``MLmodel`` file, without
            a scikit-learn flavor, naming a file outside itself or absent; a signature that
            cannot be read or holds a column type tabops cannot serve.
    """
    if path.is_file():
        return ModelSource(file=path)
    if not path.is_dir():
        raise ModelImportError(f"no model file or folder at {path}", [Problem("path", "not found")])
    mlmodel = path / MLMODEL
    if not mlmodel.is_file():
        raise ModelImportError(
            f"{path.name} is a folder without an {MLMODEL} file: give a model file or an "
            "MLflow model folder",
            [Problem("path", f"a folder without {MLMODEL}")],
        )
    document = _read_mlmodel(mlmodel)
    flavors = document.get("flavors")
    flavor = flavors.get("sklearn") if isinstance(flavors, dict) else None
    if not isinstance(flavor, dict):
        found = ", ".join(sorted(flavors)) if isinstance(flavors, dict) else "none"
        raise ModelImportError(
            f"{MLMODEL} has no sklearn flavor (flavors: {found}); tabops imports scikit-learn "
            "models",
            [Problem("MLmodel.flavors", "no sklearn flavor")],
        )
    file = _model_file(path, flavor)
    inputs, width = _signature_inputs(document.get("signature"))
    run_id = document.get("run_id")
    serialization = flavor.get("serialization_format")
    return ModelSource(
        file=file,
        folder=path,
        serialization=str(serialization) if serialization is not None else None,
        inputs=inputs,
        tensor_width=width,
        run_id=str(run_id) if run_id else None,
        flavor=dict(flavor),
    )


def _read_mlmodel(path: Path) -> dict[str, Any]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ModelImportError(
            f"cannot read {MLMODEL}: {exc}", [Problem("MLmodel", "not readable YAML")]
        ) from exc
    if not isinstance(document, dict):
        raise ModelImportError(
            f"{MLMODEL} does not hold a mapping", [Problem("MLmodel", "not a YAML mapping")]
        )
    return document


def _model_file(folder: Path, flavor: dict[str, Any]) -> Path:
    """The flavor's model file, which must lie inside the folder (its name is not trusted)."""
    name = flavor.get("pickled_model")
    where = "MLmodel.flavors.sklearn.pickled_model"
    if not isinstance(name, str) or not name:
        raise ModelImportError(f"{MLMODEL} names no model file", [Problem(where, "missing")])
    root = folder.resolve()
    try:
        file = (root / name).resolve()
    except (OSError, ValueError) as exc:
        raise ModelImportError(f"{where} is not a path", [Problem(where, str(exc))]) from exc
    if not file.is_relative_to(root):
        raise ModelImportError(
            f"{where} points outside the model folder", [Problem(where, "outside the folder")]
        )
    if not file.is_file():
        raise ModelImportError(
            f"the model file {name} named in {MLMODEL} is missing", [Problem(where, "no such file")]
        )
    return file


def _signature_inputs(
    signature: Any,
) -> tuple[tuple[SignatureColumn, ...] | None, int | None]:
    """The signature's named columns, or the width of its one tensor input."""
    if not isinstance(signature, dict) or signature.get("inputs") is None:
        return None, None
    where = "MLmodel.signature.inputs"
    raw = signature["inputs"]
    try:
        inputs = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError as exc:
        raise ModelImportError(f"{where} is not JSON: {exc}", [Problem(where, "not JSON")]) from exc
    if not isinstance(inputs, list) or not all(isinstance(item, dict) for item in inputs):
        raise ModelImportError(f"{where} is not a list of inputs", [Problem(where, "not a list")])
    if len(inputs) == 1 and inputs[0].get("type") == "tensor":
        shape = (inputs[0].get("tensor-spec") or {}).get("shape") or []
        width = shape[1] if len(shape) == 2 and isinstance(shape[1], int) else None
        return None, width if width is not None and width > 0 else None
    columns = []
    problems = []
    for position, item in enumerate(inputs):
        name, kind = item.get("name"), item.get("type")
        if not isinstance(name, str) or not name:
            problems.append(Problem(f"{where}[{position}]", "a column without a name"))
        elif kind not in SIGNATURE_KINDS:
            problems.append(Problem(name, f"signature type {kind!r} cannot be served"))
        else:
            columns.append(SignatureColumn(name, str(kind)))
    if problems:
        raise ModelImportError(
            f"{where}: {'; '.join(f'{p.field}: {p.problem}' for p in problems)}", problems
        )
    return tuple(columns), None
