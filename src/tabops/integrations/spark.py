"""Scoring a Spark DataFrame with ``mapInPandas``, with the semantics of ``tabops predict``.

Each row gains ``probability``, ``label`` and ``class_name``; a row that breaks the feature
spec keeps all three null, and a missing feature column fails the job. The version's files
travel inside the scoring function as bytes (PySpark broadcasts a large function by
itself), so executors need tabops installed but no access to the registry; each Python
worker rebuilds and verifies the predictor once and keeps it.

    from tabops.integrations.spark import score_spark_dataframe

    predictor = Predictor.load(registry, "heart-failure")
    scored = score_spark_dataframe(spark.read.parquet("patients/"), predictor)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from tabops.errors import DataError
from tabops.integrations.shipped import (
    WORKER_CORE,
    engine_module,
    worker_context,
    worker_predictor,
)
from tabops.model.manifest import ModelVersion
from tabops.model.predictor import Predictor
from tabops.scoring.local import score_chunk

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
    from pyspark.sql.types import StructType

OUTPUT_COLUMNS = ("probability", "label", "class_name")


def score_spark_dataframe(frame: DataFrame, predictor: Predictor) -> DataFrame:
    """The frame with ``probability``, ``label`` and ``class_name`` appended (lazily).

    Raises:
        MissingExtraError: PySpark is not installed.
        DataError: the frame already has one of the three output columns.
        InvalidInputError: a feature column is missing.
    """
    return frame.mapInPandas(SparkScorer(predictor), schema=scored_schema(frame.schema, predictor))


def scored_schema(schema: StructType, predictor: Predictor) -> StructType:
    """The input schema plus ``probability`` (double), ``label`` and ``class_name`` (string).

    ``label`` has the Spark type of the version's class values (long for 0/1 targets).

    Raises:
        MissingExtraError: PySpark is not installed.
        DataError: the schema already has one of the three output columns.
        InvalidInputError: a feature column is missing (checked here, not in a failed job).
    """
    types = _spark_types()
    names = schema.fieldNames()
    taken = [name for name in OUTPUT_COLUMNS if name in names]
    if taken:
        raise DataError(f"the frame already has a column {taken[0]!r}; rename it first")
    predictor.require_columns(pd.DataFrame(columns=names))
    fields = [
        *schema.fields,
        types.StructField("probability", types.DoubleType(), nullable=True),
        types.StructField("label", _label_type(types, predictor.positive[0]), nullable=True),
        types.StructField("class_name", types.StringType(), nullable=True),
    ]
    result: StructType = types.StructType(fields)
    return result


class SparkScorer:
    """The function ``DataFrame.mapInPandas`` calls: batches in, scored batches out.

    It pickles as the version's manifest and file bytes, never as a loaded model.
    """

    def __init__(self, predictor: Predictor) -> None:
        self.version: ModelVersion = predictor.version
        self.files: dict[str, bytes] = predictor.read_files()
        # A blank label turns an integer or bool column into floats or objects; pandas'
        # nullable types carry the blanks as nulls of the type the schema promises.
        label = predictor.positive[0]
        self.label_dtype: Literal["boolean", "Int64"] | None = None
        if isinstance(label, bool):
            self.label_dtype = "boolean"
        elif isinstance(label, int):
            self.label_dtype = "Int64"

    def __call__(self, batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        """Score each batch; rows are numbered per batch, since no side file is written."""
        predictor = worker_predictor(self.version, self.files)
        context = worker_context()
        for batch in batches:
            scored, _positives, _invalid, _problems = score_chunk(
                WORKER_CORE, context, predictor, batch, 1
            )
            if self.label_dtype is not None:
                scored["label"] = scored["label"].astype(self.label_dtype)
            yield scored


def _spark_types() -> Any:
    """``pyspark.sql.types``, imported when first needed."""
    return engine_module("pyspark.sql.types", "Spark", "spark")


def _label_type(types: Any, label: object) -> Any:
    if isinstance(label, bool):
        return types.BooleanType()
    if isinstance(label, int):
        return types.LongType()
    if isinstance(label, float):
        return types.DoubleType()
    return types.StringType()
