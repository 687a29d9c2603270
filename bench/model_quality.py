"""Train every example project and print its held-out metrics beside the issue's targets.

Usage (from the repository root):
    .venv/bin/python bench/model_quality.py [--repeats 20] [--budget 20] [--only NAME ...]

Every example is trained once with its own settings (as `tabops train` would). The two
heart-failure projects are also trained over `--repeats` stratified 70/30 splits (seeds
0..repeats-1, time budget `--budget` s each), whose mean is what the published figures
(Chicco & Jurman 2020, table 11: mean of 100 runs) are compared with.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tabops.project import Project, load_project, read_project_table, resolve_data_path
from tabops.training.train import train_model

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NAMES = (
    "heart-failure",
    "heart-failure-no-time",
    "credit-card-fraud",
    "device-failure",
    "credit-risk",
)
TARGETS = {
    "heart-failure": "ROC AUC >= 0.91, MCC >= 0.65 (mean of splits)",
    "heart-failure-no-time": "ROC AUC >= 0.80 (mean of splits)",
    "credit-card-fraud": "ROC AUC >= 0.98, PR AUC >= 0.975",
    "device-failure": "ROC AUC >= 0.88, PR AUC >= 0.06",
    "credit-risk": "ROC AUC >= 0.60",
}
REPEATED = ("heart-failure", "heart-failure-no-time")


def train_once(project: Project, folder: Path) -> dict[str, float | str]:
    """Held-out metrics of one training run."""
    frame = read_project_table(project, resolve_data_path(project, folder))
    started = time.perf_counter()
    result = train_model(project, frame)
    metrics = result.test.metrics
    return {
        "roc_auc": metrics["roc_auc"],
        "pr_auc": metrics["pr_auc"],
        "mcc": metrics["mcc"],
        "f1": metrics["f1"],
        "brier": metrics["brier"],
        "model": result.candidate.name + (" +cal" if result.calibration["kept"] else ""),
        "seconds": time.perf_counter() - started,
        "test_rows": float(result.rows["test"]),
        "test_positives": float(result.positives["test"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--budget", type=float, default=20.0)
    parser.add_argument("--only", nargs="*", default=list(NAMES))
    args = parser.parse_args()
    console = Console(width=200)
    table = Table(title="held-out metrics per example")
    for heading in (
        "example",
        "run",
        "ROC AUC",
        "PR AUC",
        "MCC",
        "F1",
        "Brier",
        "model",
        "s",
        "target",
    ):
        table.add_column(heading)
    for name in args.only:
        project, folder = load_project(EXAMPLES / name)
        try:
            single = train_once(project, folder)
        except FileNotFoundError as exc:
            console.print(f"[yellow]{name} skipped[/]: {exc}")
            continue
        console.print(f"{name}: {single}")
        table.add_row(name, "single split", *_cells(single), TARGETS[name])
        if name in REPEATED and args.repeats:
            runs = []
            for seed in range(args.repeats):
                settings = project.train.model_copy(
                    update={"seed": seed, "test_size": 0.3, "time_budget_s": args.budget}
                )
                runs.append(train_once(project.model_copy(update={"train": settings}), folder))
                console.print(f"  {name} seed {seed}: ROC AUC {runs[-1]['roc_auc']:.3f}")
            mean = {
                key: statistics.fmean(float(run[key]) for run in runs)
                for key in ("roc_auc", "pr_auc", "mcc", "f1", "brier", "seconds")
            }
            mean["model"] = f"{args.repeats} x 70/30"
            table.add_row(name, f"mean of {args.repeats}", *_cells(mean), TARGETS[name])
    console.print(table)


def _cells(run: dict[str, float | str]) -> list[str]:
    return [
        f"{run['roc_auc']:.3f}",
        f"{run['pr_auc']:.3f}",
        f"{run['mcc']:.3f}",
        f"{run['f1']:.3f}",
        f"{run['brier']:.3f}",
        str(run["model"]),
        f"{run['seconds']:.0f}",
    ]


if __name__ == "__main__":
    main()
