"""File-scoring benchmark: `tabops predict` against pandas + scikit-learn on the same CSV.

Usage (from the repository root):
    .venv/bin/python bench/batch.py [--rows 1000000,5000000] [--model lr|hgb] [--keep]

For each size, a CSV of that many rows (the 30-feature synthetic table of
``peers/models.py``, repeated with fresh noise) is scored twice, each in a process of its
own, timed by wall clock, its peak resident memory read with GNU time (``%M``):

- baseline: ``pandas.read_csv`` of the whole file, the same fitted scikit-learn steps'
  ``predict_proba``, ``to_csv`` of inputs plus probability, label and class name;
- tabops: ``tabops predict -m bench-<model> -i in.csv -o out.csv`` (chunks of 100,000 rows).

Prints one markdown table: rows/s, the ratio to the baseline, and peak RSS; the last line
compares tabops' peak RSS at the largest size with the smallest.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from peers.models import FEATURES, TARGET, make_table, prepare_models, tabops_environment

CHUNK = 200_000
BASELINE = """
import pickle, sys
import numpy as np, pandas as pd
source, destination, pipeline, threshold = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
with open(pipeline, "rb") as handle:
    model = pickle.load(handle)
frame = pd.read_csv(source)
probability = model.predict_proba(frame)[:, 1]
frame["probability"] = probability
frame["label"] = (probability >= threshold).astype(int)
frame["class_name"] = np.where(probability >= threshold, "positive", "negative")
frame.to_csv(destination, index=False)
"""


def write_csv(path: Path, rows: int) -> None:
    """``rows`` rows of the synthetic table's features, written in chunks."""
    table = make_table()[FEATURES]
    rng = np.random.default_rng(1)
    written = 0
    with path.open("w") as handle:
        while written < rows:
            count = min(CHUNK, rows - written)
            sample = table.sample(n=count, replace=True, random_state=int(rng.integers(1 << 31)))
            noise = rng.normal(0, 0.01, size=sample.shape) * sample.abs().to_numpy()
            chunk = pd.DataFrame(sample.to_numpy() + noise, columns=FEATURES)
            chunk.to_csv(handle, header=written == 0, index=False)
            written += count


def timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, int]:
    """(seconds, peak RSS in bytes) of a command run under GNU time."""
    with tempfile.NamedTemporaryFile(suffix=".time") as report:
        started = time.perf_counter()
        completed = subprocess.run(
            ["/usr/bin/time", "-f", "%M", "-o", report.name, *command],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.perf_counter() - started
        if completed.returncode != 0:
            raise RuntimeError(f"{command[0]} failed: {completed.stderr.strip()[-500:]}")
        kilobytes = int(Path(report.name).read_text().split()[-1])
    return seconds, kilobytes * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1000000,5000000", help="comma-separated sizes")
    parser.add_argument("--model", default="lr", choices=["lr", "hgb"])
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    sizes = [int(size) for size in args.rows.split(",")]
    work = Path(tempfile.mkdtemp(prefix="tabops-batch-bench-"))
    home = work / "home"
    print(f"[batch] training bench-{args.model} in {work}", file=sys.stderr)
    (model,) = prepare_models([args.model], work, home)
    tabops = str(Path(sys.executable).parent / "tabops")
    rows_out = []
    for size in sizes:
        source = work / f"in-{size}.csv"
        print(f"[batch] writing {size:,} rows", file=sys.stderr)
        write_csv(source, size)
        baseline = [
            sys.executable,
            "-c",
            BASELINE,
            str(source),
            str(work / "baseline.csv"),
            str(model.peer_pipeline),
            str(model.threshold),
        ]
        base_seconds, base_rss = timed(baseline)
        command = [
            tabops,
            "predict",
            "-m",
            model.name,
            "-i",
            str(source),
            "-o",
            str(work / "out.csv"),
        ]
        env = {**tabops_environment(home), "NO_COLOR": "1"}
        ours_seconds, ours_rss = timed(command, env)
        same = np.allclose(
            pd.read_csv(work / "out.csv", usecols=["probability"])["probability"],
            pd.read_csv(work / "baseline.csv", usecols=["probability"])["probability"],
            rtol=0,
            atol=1e-9,
        )
        rows_out.append((size, base_seconds, base_rss, ours_seconds, ours_rss, same))
        print(
            f"[batch] {size:,}: baseline {base_seconds:.1f} s, tabops {ours_seconds:.1f} s",
            file=sys.stderr,
        )
        source.unlink()
    print(f"model: bench-{args.model} ({TARGET} on 30 numeric features)\n")
    print(
        "| rows | baseline rows/s | baseline peak RSS | tabops rows/s | x baseline "
        "| tabops peak RSS | same probabilities |"
    )
    print("|---:|---:|---:|---:|---:|---:|---|")
    for size, base_seconds, base_rss, ours_seconds, ours_rss, same in rows_out:
        print(
            f"| {size:,} | {size / base_seconds:,.0f} | {base_rss / 2**20:,.0f} MiB | "
            f"{size / ours_seconds:,.0f} | {base_seconds / ours_seconds:.2f} | "
            f"{ours_rss / 2**20:,.0f} MiB | {'yes' if same else 'NO'} |"
        )
    if len(rows_out) > 1:
        ratio = rows_out[-1][4] / rows_out[0][4]
        print(f"\ntabops peak RSS at {sizes[-1]:,} rows / at {sizes[0]:,} rows: {ratio:.2f}")
    if not args.keep:
        for path in sorted(work.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        work.rmdir()


if __name__ == "__main__":
    main()
