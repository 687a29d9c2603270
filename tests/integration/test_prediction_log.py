"""``PredictionLog`` over a real trained version: sampling, a full buffer, failed writes,
the writer thread, compaction and retention of what it wrote.

Decisions are made by a real ``ServingCore`` with the log as its sink, as every route does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from conftest import HEART_CSV, make_registry
from tabops.config import Settings
from tabops.jobs import JobService
from tabops.model.predictor import Predictor
from tabops.monitoring.log import PredictionLog
from tabops.monitoring.segments import LogReader
from tabops.serving.context import RequestContext
from tabops.serving.core import ServingCore
from tabops.serving.deployment import Deployment
from tabops.serving.hooks import FeatureRows, Hooks

MODEL = "heart-failure"
TABOPS = Path(sys.executable).parent / "tabops"


@pytest.fixture
def records() -> list[dict]:
    return pd.read_csv(HEART_CSV).drop(columns=["DEATH_EVENT"]).to_dict("records")


def serve(home: Path, log: PredictionLog) -> tuple[ServingCore, Predictor]:
    core = ServingCore.from_settings(Settings(home=home), make_registry(home), Hooks(sink=log))
    return core, core.served_deployment().get(MODEL)


def decide(core: ServingCore, predictor: Predictor, records: list[dict], groups: int) -> list[str]:
    """``groups`` groups of the records, one request each; the ids answered."""
    ids = []
    for index in range(groups):
        context = RequestContext("predict_batch", request_id=f"req-{index}")
        decisions = core.decide_records_now(context, predictor, records)
        ids.extend(d.prediction_id for d in decisions)
    return ids


def logged_ids(root: Path) -> list[str]:
    batches = LogReader(root).batches(MODEL, columns=["prediction_id"])
    return [i for batch in batches for i in batch.column("prediction_id").to_pylist()]


def test_a_flush_writes_each_decision_once_with_its_request_features_and_latency(home, records):
    log = PredictionLog(home / "predictions")
    core, predictor = serve(home, log)
    ids = decide(core, predictor, records[:7], 3)
    assert log.flush() == 1
    assert log.flush() == 0  # nothing new

    [segment] = (home / "predictions").rglob("*.parquet")
    table = pq.read_table(segment)
    assert table.column("prediction_id").to_pylist() == sorted(ids)
    first = LogReader(home / "predictions").find(ids[0])
    assert first is not None
    assert first["request_id"] == "req-0"
    assert first["route"] == "predict_batch"
    assert first["features"]["age"] == float(records[0]["age"])
    assert first["features"]["anaemia"] is bool(records[0]["anaemia"])
    assert first["latency_ms"] >= 0
    assert first["label"] in {str(predictor.positive[0]), str(predictor.negative[0])}
    assert log.stats.logged == 21
    assert log.stats.segments_written == 1


def test_a_sample_rate_of_zero_logs_nothing_and_one_half_logs_about_half(home, records):
    nothing = PredictionLog(home / "none", sample_rate=0.0)
    core, predictor = serve(home, nothing)
    decide(core, predictor, records[:1], 50)
    assert nothing.flush() == 0
    assert nothing.stats.logged == 0

    half = PredictionLog(home / "half", sample_rate=0.5, seed=7)
    core, predictor = serve(home, half)
    decide(core, predictor, records[:1], 400)
    half.flush()
    assert 140 <= half.stats.logged <= 260
    assert len(logged_ids(home / "half")) == half.stats.logged


def test_a_full_buffer_drops_and_counts_groups_without_failing_predictions(home, records):
    log = PredictionLog(home / "predictions", buffer_rows=10)
    core, predictor = serve(home, log)
    answered = decide(core, predictor, records[:4], 5)  # 20 rows, room for 2 groups of 4
    assert len(answered) == 20
    assert log.stats.buffered == 8
    assert log.stats.dropped == 12
    log.flush()
    assert sorted(logged_ids(home / "predictions")) == sorted(answered[:8])


def test_a_failed_write_is_counted_as_dropped_and_the_writer_goes_on(home, records):
    root = home / "predictions"
    root.write_text("a file where the log's folder should be")
    log = PredictionLog(root, flush_seconds=0.05)
    core, predictor = serve(home, log)
    log.start()
    decide(core, predictor, records[:3], 2)
    deadline = time.monotonic() + 10
    while log.stats.dropped < 6 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert log.stats.dropped == 6
    assert log.stats.last_error is not None
    root.unlink()  # the disk is usable again
    answered = decide(core, predictor, records[:3], 1)
    log.close()
    log.close()  # idempotent
    assert logged_ids(root) == sorted(answered)
    decide(core, predictor, records[:1], 1)  # after close: counted, not kept
    assert log.stats.dropped == 7


def test_the_writer_thread_flushes_on_its_own_and_close_writes_the_rest(home, records):
    log = PredictionLog(home / "predictions", flush_seconds=0.05)
    core, predictor = serve(home, log)
    log.start()
    first = decide(core, predictor, records[:2], 1)
    deadline = time.monotonic() + 10
    while log.stats.logged < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sorted(logged_ids(home / "predictions")) == sorted(first)
    rest = decide(core, predictor, records[:2], 3)
    log.close()
    assert sorted(logged_ids(home / "predictions")) == sorted(first + rest)


def test_many_flushes_compact_into_one_file_per_hour_with_the_same_rows(home, records):
    log = PredictionLog(home / "predictions")
    core, predictor = serve(home, log)
    answered = []
    for _flush in range(12):
        answered += decide(core, predictor, records[:3], 2)
        log.flush()
    root = home / "predictions"
    assert len(list(root.rglob("*.parquet"))) == 12
    assert log.compact() == 0  # this hour is still open
    assert log.compact(datetime.now(UTC) + timedelta(hours=2)) == 1
    [compacted] = root.rglob("*.parquet")
    assert compacted.name.endswith("c.parquet")
    assert sorted(logged_ids(root)) == sorted(answered)
    reader = LogReader(root)
    assert reader.find(answered[-1]) is not None
    assert set(reader.locate(MODEL, answered)) == set(answered)


def test_retention_deletes_old_days_and_none_keeps_them(home, records):
    log = PredictionLog(home / "predictions", retention_days=1)
    core, predictor = serve(home, log)
    decide(core, predictor, records[:2], 1)
    log.flush()
    assert log.prune() == 0
    kept = PredictionLog(home / "predictions", retention_days=None)
    assert kept.prune(datetime.now(UTC) + timedelta(days=400)) == 0
    assert log.prune(datetime.now(UTC) + timedelta(days=2)) == 1
    assert logged_ids(home / "predictions") == []


@pytest.mark.slow
def test_tabops_worker_logs_the_jobs_it_runs_and_writes_them_when_stopped(home, tmp_path, records):
    env = {key: value for key, value in os.environ.items() if not key.startswith("TABOPS_")}
    env |= {"TABOPS_HOME": str(home), "TABOPS_MONITORING__FLUSH_SECONDS": "3600"}
    settings = Settings(home=home, job_workers=0)
    service = JobService.from_settings(
        settings, ServingCore(Deployment(make_registry(home), None, 0.0))
    )
    output = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [str(TABOPS), "worker", "--threads", "1"], env=env, stdout=output, stderr=output
    )
    try:
        job = service.submit_records(service.queue.runner.deployment.get(MODEL), records[:6])
        deadline = time.monotonic() + 60
        while not service.get(job.id).is_finished and time.monotonic() < deadline:
            time.sleep(0.05)
        assert service.get(job.id).status == "succeeded"
        assert logged_ids(home / "predictions") == []  # buffered until the worker stops
        worker.send_signal(signal.SIGINT)
        assert worker.wait(timeout=30) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
        worker.wait(timeout=30)
        output.close()
        service.close()
    frame = next(LogReader(home / "predictions").batches(MODEL)).to_pandas()
    assert len(frame) == 6
    assert set(frame["request_id"]) == {job.id}
    assert set(frame["route"]) == {"job"}


# Dask's Parquet reader calls a pandas method pandas 3.1 deprecates (not ours to change).
@pytest.mark.filterwarnings("ignore:The inplace keyword:pandas.errors.Pandas4Warning")
@pytest.mark.slow
def test_other_tools_read_the_log_as_plain_hive_partitioned_parquet(home, records):
    """Arrow datasets (as DuckDB and Spark read them) and Dask see every row once, with the
    model, version and day from the folder names and the features as a struct."""
    import dask.dataframe as dd
    import pyarrow.dataset as ds

    log = PredictionLog(home / "predictions")
    core, predictor = serve(home, log)
    ids = decide(core, predictor, records[:5], 2)
    one = core._decide(  # a single-row request, kept as plain values until the flush
        RequestContext("predict"),
        predictor,
        [0.25],
        FeatureRows(predictor.feature_names, records=records[5:6]),
    )
    ids.append(one[0].prediction_id)
    log.flush()

    dataset = ds.dataset(home / "predictions", format="parquet", partitioning="hive")
    table = dataset.to_table()
    assert sorted(table.column("prediction_id").to_pylist()) == sorted(ids)
    assert set(table.column("model").to_pylist()) == {MODEL}
    assert set(table.column("version").to_pylist()) == {1}
    assert table.column("features").type.get_field_index("age") >= 0
    frame = dd.read_parquet(home / "predictions", engine="pyarrow").compute()
    assert sorted(frame["prediction_id"]) == sorted(ids)
    assert (frame["probability"].between(0, 1)).all()
