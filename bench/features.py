"""Feature benchmark: build times, the lift of window features, serving by entity id.

Usage (from the repository root):
    .venv/bin/python bench/features.py [--parts build,lift,serve] [--loans 1000000]
                                       [--budget 60] [--duration 5]

- build: ``build_feature_table`` (what ``tabops features build`` runs) on the device-failure
  data (124,494 rows, 34 window and row features) and on ``--loans`` synthetic raw loans
  from ``examples/credit-risk-loans/make_loans.py`` (the five credit-risk seed features);
  wall time of each, reading the table included.
- lift: ``device-failure`` (raw daily metrics) against ``device-failure-windows`` (the same
  plus per-device window features), each trained with the same candidates, seed and time
  budget on the same time split; held-out ROC AUC and PR AUC. ``--candidates project``
  trains each with its project file's own candidates and budget.
- serve: the credit-risk model (logistic regression, trained here) served by ``tabops
  serve`` pinned to core 0, its per-client features imported into the SQLite online store;
  wrk on core 1, 16 connections: POST of one client's record to ``/predict`` against GET
  ``/entities/{id}/prediction`` cycling through 5,000 client ids.

Prints one markdown table per part. The online store's own lookup latency is measured by
``bench/online_store.py``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from peers.models import tabops_environment
from peers.processes import free_port, pinned_server, wait_until_answering
from wrk.load import run_wrk

from tabops.feature_store.offline import build_feature_table
from tabops.project import load_project, read_project_table, resolve_data_path
from tabops.training.train import train_model

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
TABOPS = Path(sys.executable).parent / "tabops"
WRK = Path(__file__).resolve().parent / "wrk"
KUESKI = ROOT.parent / "shared" / "datasets" / "kueski_feature_store_online.db"


def part_build(work: Path, loans: int) -> None:
    rows = []
    project, folder = load_project(EXAMPLES / "device-failure-windows")
    report = build_feature_table(project, folder, work / "home")
    rows.append(
        ("device-failure (real)", report.rows, len(project.schema_.feature_names), report.seconds)
    )
    data = work / "loans.parquet"
    generator = EXAMPLES / "credit-risk-loans" / "make_loans.py"
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, str(generator), "--rows", str(loans), "--output", str(data)],
        check=True,
        capture_output=True,
    )
    generated = time.perf_counter() - started
    project, folder = load_project(EXAMPLES / "credit-risk-loans")
    report = build_feature_table(project, folder, work / "home", data)
    rows.append((f"synthetic loans (made in {generated:.1f} s)", report.rows, 5, report.seconds))
    print("| table | rows | features | build s |\n|---|---:|---:|---:|")
    for name, count, features, seconds in rows:
        print(f"| {name} | {count:,} | {features} | {seconds:.2f} |")
    print()


def part_lift(budget: float, candidates: str) -> None:
    print(
        "| project | features | ROC AUC | PR AUC | model | train s |\n|---|---:|---:|---:|---|---:|"
    )
    for name in ("device-failure", "device-failure-windows"):
        project, folder = load_project(EXAMPLES / name)
        if candidates != "project":
            project.train.candidates = candidates.split(",")  # type: ignore[assignment]
            project.train.time_budget_s = budget
        frame = read_project_table(project, resolve_data_path(project, folder))
        started = time.perf_counter()
        result = train_model(project, frame)
        metrics = result.test.metrics
        print(
            f"| {name} | {len(project.schema_.feature_names)} | {metrics['roc_auc']:.3f} | "
            f"{metrics['pr_auc']:.3f} | {result.candidate.name} | "
            f"{time.perf_counter() - started:.0f} |"
        )
    print()


def _train_credit_risk(work: Path, home: Path) -> dict[str, Any]:
    document = yaml.safe_load((EXAMPLES / "credit-risk" / "tabops.yaml").read_text())
    document["data"] = str((EXAMPLES / "credit-risk" / document["data"]).resolve())
    document["train"].update(candidates=["logistic_regression"], time_budget_s=20, cv_folds=3)
    document["gates"] = {}
    project_file = work / "credit-risk.yaml"
    project_file.write_text(yaml.safe_dump(document, sort_keys=False))
    env = tabops_environment(home)
    subprocess.run(
        [str(TABOPS), "train", "-p", str(project_file)], check=True, env=env, capture_output=True
    )
    subprocess.run(
        [
            str(TABOPS),
            "features",
            "import",
            str(KUESKI),
            "--table",
            "features_table",
            "--view",
            "credit-risk",
            "--entity",
            "id",
            "--drop",
            "status",
        ],
        check=True,
        env=env,
        capture_output=True,
    )
    return env


def part_serve(work: Path, duration: int) -> None:
    home = work / "serve-home"
    env = _train_credit_risk(work, home)
    ids = work / "ids.txt"
    import sqlite3

    with sqlite3.connect(KUESKI) as database:
        rows = database.execute(
            "SELECT id, nb_previous_loans, avg_amount_loans_previous, age, years_on_the_job, "
            "flag_own_car FROM features_table ORDER BY id LIMIT 5000"
        ).fetchall()
    ids.write_text("\n".join(str(row[0]) for row in rows) + "\n")
    names = [
        "nb_previous_loans",
        "avg_amount_loans_previous",
        "age",
        "years_on_the_job",
        "flag_own_car",
    ]
    body = work / "record.json"
    body.write_text(json.dumps(dict(zip(names, rows[0][1:], strict=True))))
    port = free_port()
    base = f"http://127.0.0.1:{port}/v1/models/credit-risk"
    command = [str(TABOPS), "serve", "--host", "127.0.0.1", "--port", str(port)]
    with pinned_server(command, env, work, work / "serve.log") as process:
        wait_until_answering(process, f"{base}/predict", body.read_bytes(), work / "serve.log", 60)
        run_wrk(f"{base}/predict", body, 16, 1)  # warm-up
        plain = run_wrk(f"{base}/predict", body, 16, duration)
        run_wrk(f"{base}/entities", ids, 16, 1, WRK / "entities.lua")
        entity = run_wrk(f"{base}/entities", ids, 16, duration, WRK / "entities.lua")
    print("| request | req/s | p50 ms | p99 ms | clean |\n|---|---:|---:|---:|---|")
    for name, result in (
        ("POST /predict (record)", plain),
        ("GET /entities/{id}/prediction", entity),
    ):
        print(
            f"| {name} | {result.requests_per_second:,.0f} | {result.p50_ms:.2f} | "
            f"{result.p99_ms:.2f} | {result.is_clean} |"
        )
    ratio = entity.requests_per_second / plain.requests_per_second
    print(f"\npredict-by-entity / plain predict: {ratio:.2f}x\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="build,lift,serve")
    parser.add_argument("--loans", type=int, default=1_000_000)
    parser.add_argument("--budget", type=float, default=60.0)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument(
        "--candidates",
        default="random_forest,hist_gradient_boosting",
        help="candidates for the lift part; 'project' keeps each project's own list and budget",
    )
    options = parser.parse_args()
    parts = options.parts.split(",")
    with tempfile.TemporaryDirectory(prefix="tabops-features-") as folder:
        work = Path(folder)
        if "build" in parts:
            part_build(work, options.loans)
        if "lift" in parts:
            part_lift(options.budget, options.candidates)
        if "serve" in parts:
            part_serve(work, options.duration)


if __name__ == "__main__":
    main()
