"""Bootstrap benchmark: how long ``bootstrap_intervals`` takes on a large, imbalanced test set.

Usage (from the repository root):
    .venv/bin/python bench/bootstrap.py [--rows 26000] [--positives 23] [--resamples 1000]
                                        [--repeats 5]

The default set has the shape of device-failure's held-out rows (23 failures in about 26,000),
the case where counting distinct probabilities per resample matters most. Scores are drawn as
tests/unit/test_evaluate.py draws them: positives score higher on average, with some overlap.
Each of ``--repeats`` calls is timed on its own; the median, fastest and slowest are printed,
with the ROC AUC and PR AUC intervals of the last call.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np

from tabops.training.evaluate import bootstrap_intervals


def make_scored(rows: int, positives: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A seeded set whose positives score higher on average, with some overlap."""
    rng = np.random.default_rng(seed)
    y = np.zeros(rows, dtype=int)
    y[rng.choice(rows, positives, replace=False)] = 1
    probability = np.clip(rng.normal(0.3 + 0.3 * y, 0.15), 0, 1)
    return y, probability


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=26_000)
    parser.add_argument("--positives", type=int, default=23)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    options = parser.parse_args()
    if options.repeats < 1:
        parser.error("--repeats must be 1 or more")
    print(f"Python {platform.python_version()}, numpy {np.__version__}; {os.cpu_count()} CPUs")
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    y, probability = make_scored(options.rows, options.positives)
    seconds = []
    for _ in range(options.repeats):
        started = time.perf_counter()
        intervals = bootstrap_intervals(y, probability, 0.5, resamples=options.resamples)
        seconds.append(time.perf_counter() - started)
    print(
        f"{options.rows:,} rows, {options.positives:,} positives, {options.resamples:,} resamples:"
        f" median of {options.repeats} {statistics.median(seconds):.3f} s"
        f" (fastest {min(seconds):.3f} s, slowest {max(seconds):.3f} s)"
    )
    for name in ("roc_auc", "pr_auc"):
        lower, upper = intervals[name]
        print(f"{name} interval: {lower:.3f} to {upper:.3f}")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
