"""Monitoring over a large prediction log: drift and performance times, then Evidently.

    .venv/bin/python bench/monitoring.py                       # 10,000,000 rows x 30 features
    .venv/bin/python bench/monitoring.py --rows 1000000 --skip-evidently
    .venv/bin/python bench/monitoring.py --keep /tmp/monlog     # keep (and reuse) the data

Writes a prediction log in the layout of ``tabops.monitoring.layout`` (one Parquet segment per
1,000,000 rows and UTC day, the log's full schema, features in a struct) plus a labels file
per segment, and a reference built from unshifted rows. Then, each in a fresh process so that
its peak RSS is its own: tabops drift over every batch ``LogReader`` yields, and performance
(histogram ROC AUC over labelled rows, label-free estimates); and Evidently's
``DataDriftPreset`` (in a virtualenv of its own under ``bench/.peers/``) against tabops on the
first 100,000 and 1,000,000 rows. Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

MODEL, VERSION = "bench", 1
SEGMENT_ROWS = 1_000_000
REFERENCE_ROWS = 100_000
NUMERIC, CATEGORICAL = 24, 6
THRESHOLD = 0.5
# Feature -> how the live rows differ from training (the rest are unshifted).
SHIFTS = {
    "num_00": "mean +0.5 sd",
    "num_01": "sd x1.6",
    "num_02": "mean +0.05 sd",
    "num_03": "mean +0.25 sd (5% nulls)",
    "cat_0": "weights reversed",
    "cat_1": "15% unseen category",
}
_HEX = np.array([f"{i:02x}".encode() for i in range(256)], dtype="S2")


def feature_names() -> tuple[list[str], list[str]]:
    numbers = [f"num_{i:02d}" for i in range(NUMERIC)]
    categories = [f"cat_{i}" for i in range(CATEGORICAL)]
    return numbers, categories


def make_rows(rng: np.random.Generator, rows: int, shifted: bool) -> dict[str, pa.Array]:
    """Feature columns as the log types them: float64 numbers, string categories."""
    numbers, categories = feature_names()
    columns: dict[str, pa.Array] = {}
    for position, name in enumerate(numbers):
        values = rng.normal(10.0 * position, 1.0 + position % 4, rows)
        if shifted and name == "num_00":
            values += 0.5 * (1.0 + position % 4)
        if shifted and name == "num_01":
            values = 10.0 * position + (values - 10.0 * position) * 1.6
        if shifted and name == "num_02":
            values += 0.05 * (1.0 + position % 4)
        if shifted and name == "num_03":
            values += 0.25 * (1.0 + position % 4)
        mask = rng.random(rows) < 0.05 if name == "num_03" else None
        columns[name] = pa.array(values, mask=mask)
    for position, name in enumerate(categories):
        levels = [f"{name}_v{i}" for i in range(5 + 3 * position)]
        weights = np.linspace(1.0, 3.0, len(levels))
        if shifted and name == "cat_0":
            weights = weights[::-1]
        if shifted and name == "cat_1":
            levels.append(f"{name}_new")
            weights = np.append(weights, weights.sum() * 0.15 / 0.85)
        indices = rng.choice(len(levels), rows, p=weights / weights.sum()).astype(np.int32)
        array = pa.DictionaryArray.from_arrays(pa.array(indices), pa.array(levels))
        columns[name] = array.cast(pa.string())
    return columns


def score_rows(columns: dict[str, pa.Array]) -> np.ndarray:
    """The 'model': a logistic function of a few features."""
    num = {
        k: np.nan_to_num(columns[k].to_numpy(zero_copy_only=False)) for k in columns if "num" in k
    }
    linear = 0.8 * (num["num_00"] - 0.0) - 0.5 * (num["num_04"] - 40.0) + 0.3 * (num["num_05"] - 50)
    cat = np.asarray(columns["cat_0"].to_numpy(zero_copy_only=False) == "cat_0_v0", dtype=float)
    result: np.ndarray = 1.0 / (1.0 + np.exp(-(linear + 0.7 * cat - 0.8)))
    return result


def prediction_ids(group: int, rows: int) -> pa.Array:
    """32-hex ids: a 12-hex process prefix, a 12-hex group counter, an 8-hex row index."""
    head = np.frombuffer(f"0123456789ab{group:012x}".encode(), dtype=np.uint8)
    tail = _HEX[np.arange(rows, dtype=">u4").view(np.uint8).reshape(rows, 4)]
    buffer = np.empty((rows, 32), dtype=np.uint8)
    buffer[:, :24] = head
    buffer[:, 24:] = tail.view(np.uint8).reshape(rows, 8)
    fixed = pa.FixedSizeBinaryArray.from_buffers(pa.binary(32), rows, [None, pa.py_buffer(buffer)])
    return fixed.cast(pa.binary()).cast(pa.string())


def generate(folder: Path, rows: int, seed: int) -> None:
    """The reference table and statistics, the log segments and their labels."""
    from tabops.model.reference_stats import build_reference_stats
    from tabops.schema import FeatureSpec

    rng = np.random.default_rng(seed)
    numbers, categories = feature_names()
    reference = make_rows(rng, REFERENCE_ROWS, shifted=False)
    pq.write_table(pa.table(reference), folder / "reference.parquet")
    spec = FeatureSpec.model_validate(
        {
            "columns": [{"name": n, "kind": "numeric", "nullable": True} for n in numbers]
            + [{"name": c, "kind": "categorical"} for c in categories]
        }
    )
    frame = pa.table(reference).to_pandas()
    started = time.perf_counter()
    stats = build_reference_stats(frame, spec, score_rows(reference), threshold=THRESHOLD)
    print(
        f"reference statistics of {REFERENCE_ROWS:,} rows built in "
        f"{time.perf_counter() - started:.2f} s",
        file=sys.stderr,
    )
    (folder / "reference_stats.json").write_bytes(stats.to_json())
    day = datetime(2026, 1, 1, tzinfo=UTC)
    for segment, start in enumerate(range(0, rows, SEGMENT_ROWS)):
        count = min(SEGMENT_ROWS, rows - start)
        write_segment(folder, rng, segment, count, day + timedelta(days=segment))
        print(f"segment {segment + 1}: {start + count:,} rows", file=sys.stderr, flush=True)


def write_segment(
    folder: Path, rng: np.random.Generator, segment: int, rows: int, day: datetime
) -> None:
    features = make_rows(rng, rows, shifted=True)
    probability = score_rows(features)
    positive = probability >= THRESHOLD
    seconds = np.sort(rng.uniform(0, 86_399, rows))
    stamps = np.datetime64(day.replace(tzinfo=None), "us") + (seconds * 1e6).astype(
        "timedelta64[us]"
    )
    ids = prediction_ids(segment + 1, rows)
    table = pa.table(
        {
            "prediction_id": ids,
            "request_id": ids,
            "timestamp": pa.array(stamps, pa.timestamp("us", tz="UTC")),
            "route": pa.array(["predict_batch"] * 1, pa.string()).take(np.zeros(rows, np.int32)),
            "key_id": pa.nulls(rows, pa.string()),
            "entity_id": pa.nulls(rows, pa.string()),
            "probability": pa.array(probability),
            "label": pa.array(np.where(positive, "1", "0")),
            "positive": pa.array(positive),
            "threshold": pa.array(np.full(rows, THRESHOLD)),
            "latency_ms": pa.array(rng.uniform(0.1, 3.0, rows).astype(np.float32)),
            "features": pa.StructArray.from_arrays(list(features.values()), list(features)),
        }
    )
    partition = (
        folder / "predictions" / f"model={MODEL}" / f"version={VERSION}" / f"date={day.date()}"
    )
    partition.mkdir(parents=True, exist_ok=True)
    name = f"0123456789ab-{segment + 1:012x}-{segment + 1:012x}-00-{0:06d}.parquet"
    pq.write_table(table, partition / name, row_group_size=256 * 1024)
    # Outcomes drawn from the (unshifted) true probabilities, row for row with the segment.
    outcome = rng.random(rows) < probability
    labels = folder / "labels"
    labels.mkdir(exist_ok=True)
    pq.write_table(pa.table({"outcome": pa.array(outcome)}), labels / name)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_tabops(folder: Path, rows: int) -> dict[str, Any]:
    """Drift over the first ``rows`` logged rows (LogReader), then performance; in this process."""
    from tabops.model.reference_stats import ReferenceStats
    from tabops.monitoring.drift import DriftAccumulator
    from tabops.monitoring.performance import EstimateAccumulator
    from tabops.monitoring.segments import LogReader

    stats = ReferenceStats.from_json((folder / "reference_stats.json").read_bytes())
    columns = [f"features.{name}" for name in stats.features] + ["probability"]
    started = time.perf_counter()
    drift = DriftAccumulator(stats)
    seen = 0
    for batch in LogReader(folder / "predictions").batches(MODEL, VERSION, columns=columns):
        batch = batch.slice(0, rows - seen)
        drift.add(batch)
        seen += batch.num_rows
        if seen >= rows:
            break
    result = drift.result()
    drift_seconds = time.perf_counter() - started
    started = time.perf_counter()
    performance = measure_performance(folder, rows, EstimateAccumulator(THRESHOLD))
    performance_seconds = time.perf_counter() - started
    return {
        "rows": seen,
        "drift_seconds": drift_seconds,
        "performance_seconds": performance_seconds,
        "peak_rss_mb": peak_rss_mb(),
        "alert": result.drifted,
        "warn": [n for n, f in result.features.items() if f.status == "warn"],
        "psi": {n: round(f.psi, 4) for n, f in result.features.items() if f.psi is not None},
        "wasserstein": {
            n: round(f.wasserstein, 4)
            for n, f in result.features.items()
            if f.wasserstein is not None
        },
        "jensen_shannon": {
            n: round(f.jensen_shannon, 4) for n, f in result.features.items() if f.kind != "numeric"
        },
        "score_psi": result.score_psi,
        "performance": performance,
    }


def measure_performance(folder: Path, rows: int, estimates: Any) -> dict[str, Any]:
    """Histogram ROC AUC over (probability, outcome) and label-free estimates, streamed."""
    bins = 1_000
    positives = np.zeros(bins, np.int64)
    negatives = np.zeros(bins, np.int64)
    seen = 0
    segments = sorted((folder / "predictions").rglob("*.parquet"))
    for path in segments:
        log = pq.ParquetFile(path).iter_batches(
            batch_size=65_536, columns=["probability", "positive"]
        )
        labels = pq.ParquetFile(folder / "labels" / path.name).iter_batches(batch_size=65_536)
        for batch, outcome in zip(log, labels, strict=True):
            take = min(batch.num_rows, rows - seen)
            p = batch.column(0).to_numpy()[:take]
            y = outcome.column(0).to_numpy(zero_copy_only=False)[:take]
            index = np.minimum((p * bins).astype(np.int64), bins - 1)
            positives += np.bincount(index[y], minlength=bins)
            negatives += np.bincount(index[~y], minlength=bins)
            estimates.add(p, batch.column(1).to_numpy(zero_copy_only=False)[:take])
            seen += take
            if seen >= rows:
                break
        if seen >= rows:
            break
    # Pairs ranked correctly, ties within a bin counted half.
    below = np.cumsum(negatives) - negatives
    auc = float((positives * (below + negatives / 2)).sum() / (positives.sum() * negatives.sum()))
    return {
        "roc_auc_histogram": auc,
        **{
            k: v
            for k, v in estimates.result().items()
            if k in ("estimated_roc_auc", "estimated_precision")
        },
    }


EVIDENTLY_SCRIPT = textwrap.dedent(
    """
    import json, resource, sys, time
    import pyarrow.parquet as pq
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    folder, rows = sys.argv[1], int(sys.argv[2])
    segments = sorted(__import__("pathlib").Path(folder, "predictions").rglob("*.parquet"))
    started = time.perf_counter()
    reference = pq.read_table(f"{folder}/reference.parquet").to_pandas()
    current = pq.read_table(segments[0], columns=["features"]).slice(0, rows).flatten()
    names = [n.removeprefix("features.") for n in current.column_names]
    current = current.rename_columns(names).to_pandas()
    loaded = time.perf_counter() - started
    numbers = [c for c in reference.columns if c.startswith("num_")]
    categories = [c for c in reference.columns if c.startswith("cat_")]
    definition = DataDefinition(numerical_columns=numbers, categorical_columns=categories)
    started = time.perf_counter()
    snapshot = Report([DataDriftPreset()]).run(
        current_data=Dataset.from_pandas(current, data_definition=definition),
        reference_data=Dataset.from_pandas(reference, data_definition=definition),
    )
    reported = time.perf_counter() - started
    columns = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config.get("type", "").endswith("ValueDrift"):
            method, threshold, value = config["method"], config["threshold"], metric["value"]
            drifted = bool(value < threshold if "p_value" in method else value >= threshold)
            columns[config["column"]] = {"method": method, "value": value, "drifted": drifted}
    print(json.dumps({
        "rows": len(current), "load_seconds": loaded, "report_seconds": reported,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "columns": columns,
    }))
    """
)


def run_json(command: list[str], timeout: float) -> dict[str, Any]:
    completed = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, check=False
    )
    if completed.returncode != 0:
        return {
            "error": completed.stderr.strip().splitlines()[-1]
            if completed.stderr.strip()
            else "failed"
        }
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def tabops_in_subprocess(folder: Path, rows: int) -> dict[str, Any]:
    command = [sys.executable, __file__, "--measure", str(folder), "--rows", str(rows)]
    return run_json(command, timeout=3_600)


def evidently_environment() -> Path | None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from peers.environments import ensure_environment

    # Evidently 0.7 imports a pandas internal that pandas 3 removed.
    environment = ensure_environment(
        "evidently", ["evidently", "pandas<3", "pyarrow"], timeout=1_800
    )
    if environment.failure:
        print(f"evidently: {environment.failure}", file=sys.stderr)
        return None
    print(
        f"evidently {environment.version('evidently')}, pandas {environment.version('pandas')}",
        file=sys.stderr,
    )
    return environment.executable("python")


def compare_with_evidently(folder: Path, sizes: list[int]) -> None:
    python = evidently_environment()
    if python is None:
        return
    script = folder / "evidently_drift.py"
    script.write_text(EVIDENTLY_SCRIPT)
    print(
        "\n| rows | tabops s | Evidently s (load + report) | speed-up "
        "| tabops flags (PSI >= 0.2) | Evidently flags |"
    )
    print("|---:|---:|---:|---:|---|---|")
    details = []
    for rows in sizes:
        ours = tabops_in_subprocess(folder, rows)
        theirs = run_json([str(python), str(script), str(folder), str(rows)], timeout=3_600)
        if "error" in theirs or "error" in ours:
            print(f"| {rows:,} | {ours.get('error', '')} | {theirs.get('error', '')} | | | |")
            continue
        evidently_seconds = theirs["load_seconds"] + theirs["report_seconds"]
        flagged = sorted(name for name, column in theirs["columns"].items() if column["drifted"])
        print(
            f"| {rows:,} | {ours['drift_seconds']:.2f} | {evidently_seconds:.2f} "
            f"({theirs['load_seconds']:.2f} + {theirs['report_seconds']:.2f}) | "
            f"{evidently_seconds / ours['drift_seconds']:.1f}x | {', '.join(ours['alert'])} "
            f"(warn: {', '.join(ours['warn']) or '-'}) | {', '.join(flagged)} |"
        )
        details.append((rows, ours, theirs))
    for rows, ours, theirs in details:
        print(f"\nPer feature at {rows:,} rows (shifted features and two controls):")
        print(
            "| feature | shift | tabops PSI | tabops W/sd or JS "
            "| Evidently method | value | Evidently drift |"
        )
        print("|---|---|---:|---:|---|---:|---|")
        for name in [*SHIFTS, "num_10", "cat_3"]:
            column = theirs["columns"].get(name, {})
            ours_distance = ours["wasserstein"].get(name, ours["jensen_shannon"].get(name))
            print(
                f"| {name} | {SHIFTS.get(name, 'none')} | {ours['psi'].get(name)} "
                f"| {ours_distance} | {column.get('method')} "
                f"| {column.get('value', float('nan')):.4f} | {column.get('drifted')} |"
            )
        print(
            f"Evidently peak RSS: {theirs['peak_rss_mb']:.0f} MB; "
            f"tabops: {ours['peak_rss_mb']:.0f} MB"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--keep", type=Path, help="write the data here and keep it (reused when present)"
    )
    parser.add_argument("--skip-evidently", action="store_true")
    parser.add_argument("--evidently-rows", default="100000,1000000")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.measure is not None:
        print(json.dumps(measure_tabops(arguments.measure, arguments.rows)))
        return
    folder = arguments.keep or Path(tempfile.mkdtemp(prefix="tabops-monitoring-bench-"))
    try:
        marker = folder / f"generated-{arguments.rows}-{arguments.seed}"
        if not marker.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            started = time.perf_counter()
            generate(folder, arguments.rows, arguments.seed)
            marker.touch()
            print(
                f"generated in {time.perf_counter() - started:.0f} s under {folder}",
                file=sys.stderr,
            )
        report(folder, arguments)
    finally:
        if arguments.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


def report(folder: Path, arguments: argparse.Namespace) -> None:
    size = sum(path.stat().st_size for path in (folder / "predictions").rglob("*.parquet"))
    ours = tabops_in_subprocess(folder, arguments.rows)
    if "error" in ours:
        print(f"tabops failed: {ours['error']}")
        return
    print(
        f"\nPrediction log: {ours['rows']:,} rows x {NUMERIC + CATEGORICAL} features "
        f"({NUMERIC} numeric, {CATEGORICAL} categorical), {size / 2**20:,.0f} MiB of Parquet; "
        f"{os.cpu_count()} cores"
    )
    print("| step | seconds | rows/s |")
    print("|---|---:|---:|")
    for step in ("drift", "performance"):
        seconds = ours[f"{step}_seconds"]
        print(f"| {step} | {seconds:.2f} | {ours['rows'] / seconds:,.0f} |")
    print(f"peak RSS (drift + performance process): {ours['peak_rss_mb']:.0f} MB")
    print(
        f"flagged (PSI >= 0.2): {', '.join(ours['alert'])}; "
        f"warn: {', '.join(ours['warn']) or '-'}; "
        f"score PSI {ours['score_psi']:.4f}"
    )
    print(f"performance: {json.dumps(ours['performance'])}")
    if not arguments.skip_evidently:
        sizes = [int(size) for size in arguments.evidently_rows.split(",") if size]
        compare_with_evidently(folder, [s for s in sizes if s <= arguments.rows])


if __name__ == "__main__":
    main()
