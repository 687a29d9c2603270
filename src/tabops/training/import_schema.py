"""The feature spec of an imported model: the columns it takes, typed from its sample.

Which columns: the model's ``feature_names_in_``, else its MLflow signature's names, else
(a model fitted on a bare matrix) the sample's columns besides the target, in order. Their
kinds, ranges and categories are inferred from the sample as ``tabops init`` infers them,
except that every column the model takes is a feature (inference would set aside an id-like
or free-text column) and a signature's type wins where it is stricter than the sample's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tabops.errors import DataError, ModelImportError, Problem
from tabops.schema import ColumnSpec, FeatureSpec, Kind, Role, infer_schema
from tabops.training.import_source import ModelSource, SignatureColumn

# Inference needs a two-class target and a usable feature; an import borrows these columns.
_STAND_IN_TARGET = "__tabops_stand_in_target__"
_STAND_IN_FEATURE = "__tabops_stand_in_feature__"
_NUMBERS = (Kind.NUMERIC, Kind.INTEGER, Kind.BOOLEAN)


@dataclass
class ColumnLayout:
    """The columns the model takes, in order, and how it takes them."""

    columns: list[str]
    as_array: bool
    notes: list[str] = field(default_factory=list)


def model_columns(
    source: ModelSource,
    feature_names: Sequence[str] | None,
    n_features: int | None,
    sample: pd.DataFrame,
    target: str | None,
) -> ColumnLayout:
    """Which columns of the sample the model takes, checked against each other.

    Raises:
        ModelImportError: the signature and the model name different columns; the model
            takes the target; the sample lacks a column the model takes; the model takes
            another number of columns than it names.
    """
    notes: list[str] = []
    signature = [column.name for column in source.inputs] if source.inputs else None
    if feature_names:
        columns, as_array = [str(name) for name in feature_names], False
        if signature is not None and signature != columns:
            _refuse_signature(signature, columns)
    elif signature is not None:
        columns, as_array = signature, True
        notes.append("the model records no column names; its MLflow signature names them")
    else:
        columns = [str(name) for name in sample.columns if name != target]
        as_array = True
        notes.append(
            "the model records no column names: it takes the sample's columns besides the "
            f"target, in their order ({', '.join(columns)})"
        )
    widths = {"n_features_in_": n_features, "the signature's tensor width": source.tensor_width}
    for what, width in widths.items():
        if width is not None and width != len(columns):
            raise ModelImportError(
                f"the model takes {width} columns ({what}), but {len(columns)} are named: "
                f"{', '.join(columns)}",
                [Problem("model", f"{what} is {width}, not {len(columns)}")],
            )
    if target is not None and target in columns:
        raise ModelImportError(
            f"the target column {target!r} is one of the model's inputs",
            [Problem("target", "the model takes this column as an input")],
        )
    missing = [name for name in columns if name not in sample.columns]
    if missing:
        raise ModelImportError(
            f"the sample lacks column(s) the model takes: {', '.join(missing)}",
            [Problem(name, "the model takes this column; the sample lacks it") for name in missing],
        )
    left_out = [name for name in sample.columns if name not in columns and name != target]
    if left_out:
        notes.append(
            f"sample column(s) the model does not take were left out: {', '.join(left_out)}"
        )
    return ColumnLayout(columns, as_array, notes)


def _refuse_signature(signature: list[str], columns: list[str]) -> None:
    extra = [name for name in signature if name not in columns]
    lacking = [name for name in columns if name not in signature]
    problems = [Problem(name, "in the signature, not taken by the model") for name in extra]
    problems += [Problem(name, "taken by the model, not in the signature") for name in lacking]
    if not problems:
        problems = [Problem("MLmodel.signature.inputs", "lists the columns in another order")]
    raise ModelImportError(
        "the MLflow signature and the model's feature_names_in_ name different columns",
        problems,
    )


def import_spec(
    sample: pd.DataFrame,
    columns: Sequence[str],
    target: str | None,
    signature: Sequence[SignatureColumn] | None = None,
) -> FeatureSpec:
    """The feature spec: the model's columns (features, in order), then the target if any.

    Raises:
        DataError: the target is missing from the sample or does not hold two classes.
        ModelImportError: the signature says a column holds numbers, the sample text.
    """
    if len(sample) < 2:
        raise DataError("the sample holds fewer than two rows", [Problem("sample", "too short")])
    # A usable stand-in feature: inference refuses a table whose every column it sets aside.
    frame = sample[[*columns, *([target] if target is not None else [])]].assign(
        **{_STAND_IN_FEATURE: np.arange(len(sample), dtype=np.float64)}
    )
    if target is None:
        frame[_STAND_IN_TARGET] = np.arange(len(sample)) % 2
    inferred = infer_schema(frame, target if target is not None else _STAND_IN_TARGET).spec
    types = {column.name: column for column in signature or ()}
    specs = [_feature(inferred.column(name), sample[name], types.get(name)) for name in columns]
    if target is not None:
        specs.append(inferred.column(target))
    return FeatureSpec(columns=specs)


def _feature(column: ColumnSpec, values: pd.Series, typed: SignatureColumn | None) -> ColumnSpec:
    """A column the model takes, as a feature whatever inference thought of it."""
    kind = column.kind
    if kind in (Kind.TEXT, Kind.DATETIME):
        kind = Kind.CATEGORICAL
    if typed is not None:
        if typed.kind is Kind.CATEGORICAL:
            kind = Kind.CATEGORICAL
        elif kind is Kind.CATEGORICAL:
            raise ModelImportError(
                f"column {column.name!r}: the MLflow signature says {typed.type}, "
                "but the sample holds text",
                [Problem(column.name, f"text in the sample; the signature says {typed.type}")],
            )
        elif typed.kind is not Kind.BOOLEAN:
            # A signature of numbers keeps a column of only 0 and 1 in the sample a number.
            whole = kind is not Kind.NUMERIC
            kind = Kind.INTEGER if typed.kind is Kind.INTEGER and whole else Kind.NUMERIC
    present = values.dropna()
    spec = ColumnSpec(name=column.name, kind=kind, nullable=bool(values.isna().any()))
    if kind is Kind.CATEGORICAL:
        spec.categories = sorted({str(value) for value in present})
    elif kind in _NUMBERS and kind is not Kind.BOOLEAN and len(present):
        numbers = pd.to_numeric(present, errors="coerce")
        spec.minimum, spec.maximum = float(numbers.min()), float(numbers.max())
    spec.role = Role.FEATURE
    return spec
