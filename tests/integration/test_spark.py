"""Scoring a Spark DataFrame with mapInPandas gives the local engine's answers."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tabops.errors import DataError, InvalidInputError
from tabops.integrations.spark import score_spark_dataframe
from tabops.model.predictor import Predictor
from tabops.scoring.local import score_file

pyspark_sql = pytest.importorskip(
    "pyspark.sql", reason="pyspark is not installed (pip install 'tabops[spark]')"
)

pytestmark = pytest.mark.slow  # a JVM starts for the module

MODEL = "heart-failure"
JAVA_17 = Path("/usr/lib/jvm/java-17-openjdk-amd64")


@pytest.fixture(scope="module")
def spark() -> Iterator[object]:
    """A two-thread local Spark bound to 127.0.0.1, without its web UI."""
    with pytest.MonkeyPatch.context() as patch:
        if "JAVA_HOME" not in os.environ and JAVA_17.is_dir():
            patch.setenv("JAVA_HOME", str(JAVA_17))
        # Python workers must run this interpreter, the one with tabops installed.
        patch.setenv("PYSPARK_PYTHON", sys.executable)
        session = (
            pyspark_sql.SparkSession.builder.master("local[2]")
            .appName("tabops-test")
            .config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.ui.enabled", "false")
            .config("spark.sql.shuffle.partitions", "2")
            .getOrCreate()
        )
        yield session
        session.stop()


@pytest.fixture
def predictor(registry) -> Predictor:
    return Predictor.load(registry, MODEL)


@pytest.fixture
def heart(predictor) -> pd.DataFrame:
    frame = predictor.examples.sample(n=120, replace=True, random_state=1).reset_index(drop=True)
    frame.insert(0, "patient", [f"p{i}" for i in range(len(frame))])
    frame["age"] = frame["age"].astype(float)
    frame.loc[[5, 77], "age"] = np.nan  # invalid rows: left unscored
    return frame


def test_spark_scoring_matches_the_local_engine_row_for_row(spark, predictor, heart, tmp_path):
    source = tmp_path / "in.parquet"
    heart.to_parquet(source)
    score_file(predictor, source, tmp_path / "local.parquet")
    expected = pd.read_parquet(tmp_path / "local.parquet")

    scored = score_spark_dataframe(spark.read.parquet(str(source)).repartition(3), predictor)
    # collect(), not toPandas(): PySpark's pandas conversion warns under pandas 3.
    collected = pd.DataFrame([row.asDict() for row in scored.collect()])
    rows = collected.set_index("patient").loc[expected["patient"]].reset_index()

    assert scored.columns == [*heart.columns, "probability", "label", "class_name"]
    np.testing.assert_allclose(rows["probability"], expected["probability"], rtol=0, atol=1e-12)
    assert rows["probability"].isna().tolist() == expected["probability"].isna().tolist()
    assert rows.loc[[5, 77], ["label", "class_name"]].isna().all().all()
    valid = expected["probability"].notna()
    assert rows.loc[valid, "label"].astype(int).tolist() == expected.loc[valid, "label"].tolist()
    names = rows["class_name"].fillna("-").tolist()
    assert names == expected["class_name"].fillna("-").tolist()
    assert dict(scored.dtypes)["label"] == "bigint"


def test_a_frame_that_already_has_an_output_column_is_refused(spark, predictor, heart):
    frame = spark.createDataFrame(heart.assign(label=1).head(3))

    with pytest.raises(DataError, match="already has a column 'label'"):
        score_spark_dataframe(frame, predictor)


def test_a_missing_feature_column_fails_before_any_job_runs(spark, predictor, heart):
    frame = spark.createDataFrame(heart.drop(columns=["age"]).head(3))

    with pytest.raises(InvalidInputError, match="missing columns: age"):
        score_spark_dataframe(frame, predictor)
