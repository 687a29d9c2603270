"""Time `tabops train` with default settings on the synthetic 30-feature table, by size.

Usage (from the repository root):
    .venv/bin/python bench/training.py [--rows 20000 200000 1000000] [--search-rows N|all]

For each size, the table (scikit-learn's make_classification: 30 features, 10 of them
informative, about 2% positives, seed 0; the serving benchmark's table at other sizes) is
written as Parquet, `tabops init` writes its project file, and `tabops train` runs it in a
fresh process with every training setting at its default. Printed per size: the whole
command's wall time and peak memory, then each stage's seconds and the process's peak
memory by the end of it (from the version's manifest), the search rows, the chosen model
and its held-out ROC AUC. `--search-rows all` searches on every training row (the slow
search the sample is compared with).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from sklearn.datasets import make_classification

FEATURES = 30
INFORMATIVE = 10
POSITIVE_SHARE = 0.02
TARGET = "target"
# Three columns on wide scales, as in the serving benchmark's table.
WIDE_COLUMNS = {"f00": 1e3, "f01": 1e4, "f02": 1e5}


def make_table(rows: int) -> pd.DataFrame:
    """The synthetic table at ``rows`` rows."""
    features, target = make_classification(
        n_samples=rows,
        n_features=FEATURES,
        n_informative=INFORMATIVE,
        weights=[1 - POSITIVE_SHARE],
        random_state=0,
    )
    table = pd.DataFrame(features, columns=[f"f{index:02d}" for index in range(FEATURES)])
    for column, factor in WIDE_COLUMNS.items():
        table[column] *= factor
    table[TARGET] = target
    return table


def tabops(*arguments: str, env: dict[str, str]) -> tuple[float, float]:
    """Run a tabops command; its wall seconds and peak memory (MiB), or exit with its output."""
    command = [str(Path(sys.executable).parent / "tabops"), *arguments]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    completed = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if completed.returncode != 0:
        sys.exit(f"{' '.join(arguments)} failed:\n{completed.stdout[-3000:]}{completed.stderr}")
    # RUSAGE_CHILDREN keeps the largest child so far: a smaller later one reads as the same.
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, (peak if peak > before else float("nan")) / 1024


def measure(rows: int, search_rows: str | None, work: Path) -> dict[str, Any]:
    """Train the table at one size; what the run took and what it chose."""
    folder = work / f"rows-{rows}"
    folder.mkdir()
    data = folder / "table.parquet"
    make_table(rows).to_parquet(data, index=False)
    env = {**os.environ, "TABOPS_HOME": str(folder / "home"), "NO_COLOR": "1"}
    project = folder / "tabops.yaml"
    tabops(
        "init", str(data), "--target", TARGET, "--name", "synthetic", "-o", str(project), env=env
    )
    document = yaml.safe_load(project.read_text())
    document["gates"] = {}
    if search_rows is not None:
        document.setdefault("train", {})["search_rows"] = (
            None if search_rows == "all" else int(search_rows)
        )
    project.write_text(yaml.safe_dump(document, sort_keys=False))
    seconds, peak = tabops("train", "-p", str(project), env=env)
    [manifest_path] = (folder / "home").rglob("manifest.json")
    manifest = json.loads(manifest_path.read_text())
    return {
        "rows": rows,
        "seconds": seconds,
        "peak_mib": peak,
        "stages": manifest["stage_seconds"],
        "stage_peak_mib": manifest.get("stage_peak_rss_mb", {}),
        "search_rows": manifest["search_rows"],
        "model": manifest["candidate"],
        "params": manifest["params"],
        "roc_auc": manifest["metrics"]["roc_auc"],
        "pr_auc": manifest["metrics"]["pr_auc"],
        "notes": manifest["notes"],
    }


def report(result: dict[str, Any]) -> None:
    """One size's figures, as a few lines of Markdown."""
    print(
        f"\n### {result['rows']:,} rows: {result['seconds']:.0f} s, "
        f"peak {result['peak_mib']:,.0f} MiB; searched on {result['search_rows']:,} rows; "
        f"{result['model']} {result['params']}; test ROC AUC {result['roc_auc']:.4f}, "
        f"PR AUC {result['pr_auc']:.4f}\n"
    )
    print("| stage | s | peak MiB by its end |\n|---|---:|---:|")
    for stage, seconds in result["stages"].items():
        peak = result["stage_peak_mib"].get(stage)
        print(f"| {stage} | {seconds:.1f} | {'' if peak is None else f'{peak:,.0f}'} |")
    for note in result["notes"]:
        print(f"\nnote: {note}")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[20_000, 200_000, 1_000_000])
    parser.add_argument("--search-rows", default=None, help="a number, or 'all'")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    load = os.getloadavg()
    print(f"{os.cpu_count()} cores; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    results = []
    with tempfile.TemporaryDirectory(prefix="tabops-training-bench-") as work:
        for rows in args.rows:
            results.append(measure(rows, args.search_rows, Path(work)))
            report(results[-1])
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
