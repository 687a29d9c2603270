"""File scoring on a real two-worker Dask cluster: the local engine's output, row for row."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tabops.cli.main import app
from tabops.config import get_settings
from tabops.errors import DataError, InvalidInputError, MissingExtraError
from tabops.integrations.dask import score_file_dask, start_local_cluster
from tabops.integrations.dask.partitions import CsvPart
from tabops.integrations.dask.workers import Output, ShippedModel, append_part, score_partition
from tabops.model.predictor import Predictor
from tabops.scoring.driver import errors_path
from tabops.scoring.local import score_file

distributed = pytest.importorskip("distributed", reason="the 'dask' extra is not installed")

MODEL = "heart-failure"
PARTITION = 37  # rows: small enough that a 300-row file spans several partitions


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """A two-worker cluster of processes, shared by the module's tests; all on 127.0.0.1."""
    with start_local_cluster(workers=2, threads_per_worker=1) as cluster:
        with distributed.Client(cluster, set_as_default=False) as client:
            addresses = [cluster.scheduler_address, *client.nthreads()]
        assert all(address.startswith("tcp://127.0.0.1:") for address in addresses)
        yield cluster.scheduler_address


@pytest.fixture
def predictor(registry) -> Predictor:
    return Predictor.load(registry, MODEL)


@pytest.fixture
def heart(predictor) -> pd.DataFrame:
    """300 rows with an id column first and a few rows that break the spec."""
    rng = np.random.default_rng(0)
    frame = predictor.examples.sample(n=300, replace=True, random_state=0).reset_index(drop=True)
    frame["age"] = frame["age"] + rng.normal(0, 5, size=len(frame)).round(1)
    frame.insert(0, "patient", [f"p{i}" for i in range(len(frame))])
    frame = frame.astype({"time": str})
    frame.loc[3, "time"] = "soon"
    frame.loc[40, "age"] = np.nan
    frame.loc[41, "time"] = "inf"
    frame.loc[250, "ejection_fraction"] = np.nan
    return frame


def score_both(predictor, source: Path, suffix: str, scheduler: str, **options):
    local_out = source.parent / f"local{suffix}"
    dask_out = source.parent / f"dask{suffix}"
    local = score_file(predictor, source, local_out, chunk_rows=PARTITION)
    seen: list[tuple[int, int, int]] = []
    on_dask = score_file_dask(
        predictor,
        options.pop("dask_source", source),
        dask_out,
        scheduler=scheduler,
        partition_rows=PARTITION,
        progress=lambda *step: seen.append(step),
        **options,
    )
    return local, on_dask, local_out, dask_out, seen


def assert_same_result(local, on_dask) -> None:
    assert (on_dask.rows, on_dask.positives, on_dask.invalid_rows) == (
        local.rows,
        local.positives,
        local.invalid_rows,
    )
    assert on_dask.problems == local.problems
    assert errors_path(on_dask.output).read_bytes() == errors_path(local.output).read_bytes()


@pytest.mark.slow
def test_csv_on_dask_is_byte_for_byte_the_local_output_with_the_same_side_file(
    predictor, heart, tmp_path, scheduler
):
    source = tmp_path / "in.csv"
    heart.to_csv(source, index=False)

    local, on_dask, local_out, dask_out, seen = score_both(predictor, source, ".csv", scheduler)

    assert dask_out.read_bytes() == local_out.read_bytes()
    assert_same_result(local, on_dask)
    assert on_dask.invalid_rows == 4
    assert [problem.field for problem in on_dask.problems] == [
        "row 4.time",
        "row 41.age",
        "row 42.time",
        "row 251.ejection_fraction",
    ]
    parts = -(-len(heart) // PARTITION)
    assert seen[-1] == (len(heart), parts, parts)
    assert [step[1] for step in seen] == list(range(1, parts + 1))


@pytest.mark.slow
def test_parquet_on_dask_equals_the_local_output_row_for_row(predictor, heart, tmp_path, scheduler):
    source = tmp_path / "in.parquet"
    heart.to_parquet(source, row_group_size=PARTITION)

    local, on_dask, local_out, dask_out, _seen = score_both(
        predictor, source, ".parquet", scheduler
    )

    scored = pd.read_parquet(dask_out)
    pd.testing.assert_frame_equal(scored, pd.read_parquet(local_out))
    # Parts 0 and 1 have blank labels (doubles), part 2 none (integers): cast like locally.
    assert pq.read_schema(dask_out).equals(pq.read_schema(local_out), check_metadata=False)
    assert list(scored.columns) == [*heart.columns, "probability", "label", "class_name"]
    assert scored["patient"].tolist() == heart["patient"].tolist()
    assert sorted(np.flatnonzero(scored["probability"].isna())) == [3, 40, 41, 250]
    assert_same_result(local, on_dask)


@pytest.mark.slow
def test_a_folder_of_parquet_parts_is_read_in_natural_name_order(
    predictor, heart, tmp_path, scheduler
):
    whole = tmp_path / "whole.parquet"
    heart.to_parquet(whole)
    folder = tmp_path / "parts"
    folder.mkdir()
    for number, start in enumerate(range(0, len(heart), 25)):  # part.0 .. part.11
        heart.iloc[start : start + 25].to_parquet(folder / f"part.{number}.parquet")

    local, on_dask, local_out, dask_out, _seen = score_both(
        predictor, whole, ".csv", scheduler, dask_source=folder
    )

    pd.testing.assert_frame_equal(pd.read_csv(dask_out), pd.read_csv(local_out))
    assert_same_result(local, on_dask)


def test_a_missing_column_fails_before_a_cluster_starts_or_anything_is_written(
    predictor, heart, tmp_path
):
    source = tmp_path / "in.parquet"
    heart.drop(columns=["age"]).to_parquet(source)

    with pytest.raises(InvalidInputError, match="missing columns: age") as caught:
        score_file_dask(predictor, source, tmp_path / "out.csv")

    assert [problem.field for problem in caught.value.problems] == ["age"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["in.parquet"]


def test_missing_or_empty_input_is_a_data_error(predictor, heart, tmp_path):
    empty = tmp_path / "empty.csv"
    heart.head(0).to_csv(empty, index=False)

    with pytest.raises(DataError, match="no data file"):
        score_file_dask(predictor, tmp_path / "absent.csv", tmp_path / "out.csv")
    with pytest.raises(DataError, match="holds no rows"):
        score_file_dask(predictor, empty, tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.slow
def test_without_a_scheduler_a_local_cluster_is_started_and_closed(predictor, heart, tmp_path):
    source = tmp_path / "in.parquet"
    heart.to_parquet(source)

    result = score_file_dask(predictor, source, tmp_path / "out.parquet", workers=1)

    assert result.rows == len(heart)
    assert result.invalid_rows == 4
    assert pd.read_parquet(tmp_path / "out.parquet")["probability"].notna().sum() == len(heart) - 4


def test_without_dask_installed_the_error_names_the_extra(predictor, heart, tmp_path, monkeypatch):
    source = tmp_path / "in.csv"
    heart.to_csv(source, index=False)
    monkeypatch.setitem(sys.modules, "distributed", None)  # what an absent package looks like

    with pytest.raises(MissingExtraError, match=r"pip install 'tabops\[dask\]'"):
        score_file_dask(predictor, source, tmp_path / "out.csv")


@pytest.mark.slow
def test_cli_predict_on_dask_writes_what_the_local_engine_writes(
    home, heart, tmp_path, scheduler, monkeypatch
):
    monkeypatch.setenv("TABOPS_HOME", str(home))
    monkeypatch.setenv("COLUMNS", "120")
    get_settings.cache_clear()
    source = tmp_path / "in.csv"
    heart.to_csv(source, index=False)
    runner = CliRunner()

    try:
        command = ["predict", "-m", MODEL, "-i", str(source), "-o"]
        local = runner.invoke(app, [*command, str(tmp_path / "l.csv")])
        on_dask = runner.invoke(
            app, [*command, str(tmp_path / "d.csv"), "--engine", "dask", "--scheduler", scheduler]
        )
    finally:
        get_settings.cache_clear()

    assert local.exit_code == 0, local.output
    assert on_dask.exit_code == 0, on_dask.output
    assert "scored 300 rows" in on_dask.output
    assert "4 row(s) failed validation" in on_dask.output
    assert (tmp_path / "d.csv").read_bytes() == (tmp_path / "l.csv").read_bytes()


def test_cli_scheduler_without_the_dask_engine_is_refused(home, tmp_path, monkeypatch):
    monkeypatch.setenv("TABOPS_HOME", str(home))
    get_settings.cache_clear()
    args = ["predict", "-m", MODEL, "-i", "in.csv", "-o", "out.csv", "--scheduler", "tcp://x:1"]

    result = CliRunner().invoke(app, args)

    get_settings.cache_clear()
    assert result.exit_code == 1
    assert "--scheduler needs --engine dask" in result.output


@pytest.mark.parametrize("csv", [True, False], ids=["csv", "parquet"])
def test_a_worker_that_cannot_see_the_output_folder_says_it_must_be_shared(
    predictor, heart, tmp_path, csv
):
    # What a worker on another host without the shared mount meets: no such file.
    model = ShippedModel(predictor.version, predictor.read_files())
    output = Output(str(tmp_path / "elsewhere" / "out.tmp"), csv=csv, chunk_rows=100_000)
    encoded = score_partition(heart, model, output, partition_info={"number": 0})
    part = CsvPart(str(tmp_path / "in.csv"), 0, 0, b"")

    with pytest.raises(DataError, match="write the output to a folder every worker shares"):
        append_part(encoded, None, part, model, output)
