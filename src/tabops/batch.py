"""Scoring a whole file (CSV or Parquet) with a predictor, written atomically."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tabops.dataset import read_table, table_format
from tabops.errors import DataError
from tabops.predictor import Predictor


@dataclass
class BatchResult:
    """What a file scoring run produced."""

    rows: int
    positives: int
    output: Path


def score_file(predictor: Predictor, source: Path, destination: Path) -> BatchResult:
    """Append ``probability``, ``label`` and ``class_name`` to every row of a file.

    The output keeps the input columns; its format follows its suffix. It is written to a
    temp file and renamed, so a failed run leaves no partial output.

    Raises:
        DataError: unreadable input or an unknown output format.
        InvalidInputError: rows that break the model's feature spec (nothing is written).
    """
    output_format = table_format(destination)
    if output_format == "sqlite":
        raise DataError("write predictions to .csv or .parquet")
    frame = read_table(source)
    predictor.check_frame(frame)
    probability = predictor.score_frame(frame)
    is_positive = probability >= predictor.threshold
    positive_value, positive_name = predictor.positive
    negative_value, negative_name = predictor.negative
    scored = frame.copy()
    scored["probability"] = probability
    scored["label"] = np.where(is_positive, positive_value, negative_value)
    scored["class_name"] = np.where(is_positive, positive_name, negative_name)
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.")
    os.close(handle)
    try:
        if output_format == "csv":
            scored.to_csv(temp_name, index=False)
        else:
            scored.to_parquet(temp_name, index=False)
        os.replace(temp_name, destination)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return BatchResult(rows=len(scored), positives=int(is_positive.sum()), output=destination)
