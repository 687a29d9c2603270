"""Serving benchmark: tabops beside a bare ASGI floor, a seed FastAPI app, BentoML and MLServer.

Usage (from the repository root):
    .venv/bin/python bench/serving.py [--duration 5] [--quick] [--skip-peers]
                                      [--systems tabops,tabops-nolog] [--models lr,hgb]
                                      [--json PATH] [--timeout 1800] [--keep]

Prints markdown tables on stdout (progress on stderr); takes about 6 minutes with the
peers installed, plus about a minute to install them on the first run.

Every system serves the same fitted model (``peers/models.py``): a logistic regression
("lr") and a histogram gradient boosting ("hgb"), trained through ``tabops train`` on a
fixed synthetic table of 30 numeric features with about 2% positives.

1. In process, no HTTP, on one core and one thread: scikit-learn's ``predict_proba`` on a
   one-row DataFrame and on 10,000 rows, the seed's per-request work, and tabops'
   ``Predictor`` on the same records; the median time per call over repeated timeit runs.
2. Over HTTP on 127.0.0.1 (``wrk/scenarios.py``): one server at a time, pinned to core 0,
   loaded by wrk pinned to core 1 after a 1 s warm-up at the same concurrency. Scenarios:
   one record per request over 1 and 16 connections, 1,000 records per request over 4
   (rows/s = requests/s x 1,000); p50 and p99 come from wrk's latency distribution, and
   any non-2xx answer or socket error is flagged. Systems: the floor (``peers/floor.py``,
   no framework, no model) on uvicorn and on granian; ``tabops serve``, the same over a
   copy of its home holding an API key, every request carrying the key (``peers/keys.py``),
   the same server's V2 inference route in three request forms (``peers/tabops_v2.py``),
   and tabops on granian; the seeds' approach (``peers/seed_fastapi.py``); BentoML and
   MLServer. granian, BentoML and MLServer each run from a virtualenv of their own under
   ``bench/.peers/``, made on first use (granian's holds tabops too, in editable mode from
   this repository) and only when one of their systems is selected (``--systems``).

wrk (Debian's package) and taskset must be on PATH; the script stops at once when they are not.

A ratio column divides a row's throughput by that system's for the same model and
scenario; "x floor" (the uvicorn floor) is only given for one-record scenarios, and
"x tabops" (``tabops serve``) for tabops' rows only, which shows what an API key or the
V2 protocol costs. With ``tabops-v2``, a last table sets each V2 form beside ``/v1`` and
beside MLServer sent the same form, and says whether the V2 targets are met
(``wrk/targets.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import shutil
import signal
import statistics
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import Any

import pandas as pd
from peers.environments import (
    PeerEnvironment,
    ensure_environment,
    granian_requirements,
    peer_requirements,
)
from peers.keys import make_keyed_home
from peers.mlserver_peer import MLSERVER_TENSOR, mlserver_servers
from peers.models import CANDIDATES, BenchModel, ModelSetupError, prepare_models
from peers.systems import (
    BENTOML,
    FLOOR_GRANIAN,
    FLOOR_UVICORN,
    MLSERVER,
    SEED,
    TABOPS,
    TABOPS_GRANIAN,
    TABOPS_KEY,
    TABOPS_NOLOG,
    Server,
    bentoml_server,
    floor_servers,
    record_bodies,
    seed_server,
    tabops_servers,
)
from peers.tabops_v2 import TABOPS_V2, tabops_v2_servers
from threadpoolctl import threadpool_limits
from wrk.scenarios import HttpResult, measure_server
from wrk.table import format_http_table
from wrk.targets import format_v2_table, format_v2_targets

# Programs the HTTP part runs, and how to install them on Debian.
TOOLS = {"wrk": "apt-get install wrk", "taskset": "apt-get install util-linux"}
# The names --systems takes, and the table rows each one stands for.
SYSTEMS = {
    "floor": (FLOOR_UVICORN,),
    "floor-granian": (FLOOR_GRANIAN,),
    "tabops": (TABOPS,),
    "tabops-key": (TABOPS_KEY,),
    "tabops-nolog": (TABOPS_NOLOG,),
    "tabops-granian": (TABOPS_GRANIAN,),
    "tabops-v2": TABOPS_V2,
    "seed": (SEED,),
    "bentoml": (BENTOML,),
    "mlserver": (MLSERVER, MLSERVER_TENSOR),
}
GRANIAN_SYSTEMS = frozenset({"floor-granian", "tabops-granian"})


class BenchTimeout(Exception):
    """The global time limit ran out."""


@dataclass(frozen=True)
class InProcessResult:
    """The median time of one in-process call."""

    model: str
    call: str
    rows: int
    seconds_per_call: float
    baseline: str

    @property
    def rows_per_second(self) -> float:
        """Rows scored per second."""
        return self.rows / self.seconds_per_call


@dataclass
class Outcome:
    """Everything a run found, filled in as it goes (a run cut short keeps what it has)."""

    setup: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    in_process: list[InProcessResult] = field(default_factory=list)
    http: list[HttpResult] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """A JSON document of the run, derived figures included."""
        return {
            "setup": self.setup,
            "notes": self.notes,
            "in_process": [
                {**asdict(row), "rows_per_second": row.rows_per_second} for row in self.in_process
            ],
            "http": [{**asdict(row), "throughput": row.throughput} for row in self.http],
        }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; ``--quick`` means 2 s per measurement."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk measurement")
    parser.add_argument("--quick", action="store_true", help="2 s per measurement (smoke run)")
    parser.add_argument("--skip-peers", action="store_true", help="leave out BentoML, MLServer")
    parser.add_argument(
        "--systems",
        default=",".join(SYSTEMS),
        help=f"comma-separated, from {', '.join(SYSTEMS)} (default: all of them)",
    )
    parser.add_argument("--models", default="lr,hgb", help="comma-separated: lr, hgb")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--timeout", type=int, default=1800, help="global limit in seconds")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs, models)")
    args = parser.parse_args(argv)
    args.models = [key.strip() for key in args.models.split(",") if key.strip()]
    unknown = sorted(set(args.models) - CANDIDATES.keys())
    if unknown or not args.models:
        parser.error(f"--models takes {', '.join(CANDIDATES)}; got {args.models}")
    systems = [name.strip() for name in args.systems.split(",") if name.strip()]
    if set(systems) - SYSTEMS.keys() or not systems:
        parser.error(f"--systems takes {', '.join(SYSTEMS)}; got {systems}")
    if args.skip_peers:
        systems = [name for name in systems if name not in peer_requirements()]
    args.systems = systems
    if args.quick:
        args.duration = 2
    return args


def time_per_call(call: Callable[[], object], budget_seconds: float) -> float:
    """Median seconds per call over timeit repeats, as many as fit in the budget (3 to 30)."""
    timer = timeit.Timer(call)
    number, elapsed = timer.autorange()
    repeats = int(min(max(budget_seconds / elapsed, 3), 30))
    return statistics.median(timer.repeat(repeat=repeats, number=number)) / number


def measure_in_process(model: BenchModel, budget_seconds: float) -> list[InProcessResult]:
    """tabops' predictor and scikit-learn on one record and on every scored record."""
    pipeline, predictor, records = model.predictor.pipeline, model.predictor, model.records
    record = records[0]
    one_row, all_rows = pd.DataFrame([record]), pd.DataFrame(records)
    seed_pipeline = pickle.loads(model.peer_pipeline.read_bytes())
    sklearn_one = "sklearn predict_proba(1-row DataFrame)"
    sklearn_all = f"sklearn predict_proba({len(records):,}-row DataFrame)"
    # predict_record is the single-record path, where the predictor has one.
    if hasattr(predictor, "predict_record"):
        tabops_one = ("tabops predict_record(record)", lambda: predictor.predict_record(record))
    else:
        tabops_one = (
            "tabops predict_records([record])",
            lambda: predictor.predict_records([record]),
        )
    calls: list[tuple[str, int, Callable[[], object], str]] = [
        (sklearn_one, 1, lambda: pipeline.predict_proba(one_row), sklearn_one),
        (
            "seed: DataFrame([record]) + predict_proba",
            1,
            lambda: seed_pipeline.predict_proba(pd.DataFrame([record])),
            sklearn_one,
        ),
        (tabops_one[0], 1, tabops_one[1], sklearn_one),
        (sklearn_all, len(records), lambda: pipeline.predict_proba(all_rows), sklearn_all),
        (
            "seed: DataFrame(records) + predict_proba",
            len(records),
            lambda: seed_pipeline.predict_proba(pd.DataFrame(records)),
            sklearn_all,
        ),
        (
            f"tabops predict_records({len(records):,} records)",
            len(records),
            lambda: predictor.predict_records(records),
            sklearn_all,
        ),
    ]
    results = []
    for name, rows, call, baseline in calls:
        seconds = time_per_call(call, budget_seconds)
        _say(f"[in-process] {model.key}: {name}: {seconds * 1e6:,.1f} µs")
        results.append(InProcessResult(model.key, name, rows, seconds, baseline))
    return results


def one_core_in_process(models: list[BenchModel], budget_seconds: float) -> list[InProcessResult]:
    """In-process timings on core 0 with one BLAS/OpenMP thread, as the servers get."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {0})
    try:
        with threadpool_limits(limits=1):
            return [row for model in models for row in measure_in_process(model, budget_seconds)]
    finally:
        os.sched_setaffinity(0, before)


def install_peers(names: list[str], timeout: float) -> dict[str, PeerEnvironment]:
    """The named peers' virtualenvs (``bentoml``, ``mlserver``), each made once and reused."""
    requirements = peer_requirements()
    return {
        name: ensure_environment(name, requirements[name], timeout)
        for name in names
        if name in requirements
    }


def install_granian(timeout: float) -> PeerEnvironment:
    """granian's virtualenv, with tabops installed in it; made once and reused."""
    requirements, pins = granian_requirements()
    return ensure_environment("granian", requirements, timeout, pins)


def plan_servers(
    models: list[BenchModel],
    granian: PeerEnvironment | None,
    peers: dict[str, PeerEnvironment],
    work: Path,
    home: Path,
    systems: list[str],
) -> list[Server]:
    """The floors once, then every system for each model; only the ``systems`` named."""
    keyed = None
    if "tabops-key" in systems:
        keyed = make_keyed_home(home, work / "home-key")
        done = f"created a predict-scope key in {keyed.home}"
        _say(f"[keys] {keyed.failure or done}")
    servers: list[Server] = []
    for model in models:
        single, batch = record_bodies(model, work / model.name / "bodies")
        if not servers:
            servers.extend(floor_servers(single, batch, granian))
        servers.extend(tabops_servers(model, home, single, batch, granian, keyed))
        if "tabops-v2" in systems:
            servers.extend(tabops_v2_servers(model, home, work / model.name / "v2"))
        servers.append(seed_server(model, single, batch))
        if "bentoml" in peers:
            servers.append(bentoml_server(model, peers["bentoml"], work, single, batch))
        if "mlserver" in peers:
            servers.extend(mlserver_servers(model, peers["mlserver"], work))
    rows = {row for name in systems for row in SYSTEMS[name]}
    return [server for server in servers if server.system in rows]


def format_in_process_table(results: list[InProcessResult]) -> str:
    """Markdown: one row per model and call."""
    by_call = {(result.model, result.call): result for result in results}
    lines = [
        "| model | call | rows | µs per call | rows/s | time x sklearn |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for result in results:
        baseline = by_call[(result.model, result.baseline)]
        lines.append(
            f"| {result.model} | {result.call} | {result.rows:,} "
            f"| {result.seconds_per_call * 1e6:,.1f} | {result.rows_per_second:,.0f} "
            f"| {result.seconds_per_call / baseline.seconds_per_call:.3g} |"
        )
    return "\n".join(lines)


def describe_setup(
    args: argparse.Namespace,
    granian: PeerEnvironment | None,
    peers: dict[str, PeerEnvironment],
    load: str,
) -> dict[str, Any]:
    """Versions and settings printed above the tables and kept in the JSON."""
    versions = {
        name: metadata.version(name)
        for name in ("tabops", "scikit-learn", "pandas", "fastapi", "uvicorn")
    }
    versions.update({"python": platform.python_version()})
    if granian is not None:
        versions["granian (bench venv)"] = granian.version("granian")
    if "bentoml" in peers:
        versions["bentoml (peer venv)"] = peers["bentoml"].version("bentoml")
    if "mlserver" in peers:
        versions["mlserver (peer venv)"] = peers["mlserver"].version("mlserver")
    return {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        # Another busy process on this machine skews every figure: say so.
        "load average at start (1, 5, 15 min)": load,
        "seconds_per_measurement": args.duration,
        "models": args.models,
        "systems": args.systems,
        "versions": versions,
    }


def _load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def _cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def run(args: argparse.Namespace, work: Path, outcome: Outcome) -> None:
    """Train, time in process, then measure every server; results land in ``outcome``."""
    home, load = work / "home", _load_average()
    _say(f"[models] training {', '.join(args.models)} through tabops in {work}")
    models = prepare_models(args.models, work, home)
    outcome.notes.extend(describe_scoring(model) for model in models)
    outcome.in_process = one_core_in_process(models, 0.5 if args.quick else 2.0)
    wants_granian = not GRANIAN_SYSTEMS.isdisjoint(args.systems)
    granian = install_granian(timeout=args.timeout) if wants_granian else None
    peers = install_peers(args.systems, timeout=args.timeout)
    outcome.setup = describe_setup(args, granian, peers, load)
    expected = {model.key: float(model.probabilities[0]) for model in models}
    for server in plan_servers(models, granian, peers, work, home, args.systems):
        measure_server(
            server, args.duration, work / "logs", expected.get(server.model), outcome.http
        )


def describe_scoring(model: BenchModel) -> str:
    """What scores tabops' requests, and how far it is from scikit-learn on the scored rows."""
    predictor = model.predictor
    frame = pd.DataFrame(model.records)
    difference = float(abs(predictor.score_frame(frame) - model.probabilities).max())
    runtime = getattr(predictor, "runtime", "scikit-learn")
    return (
        f"{model.key}: tabops scores with {runtime}; largest |p - scikit-learn's p| over "
        f"{len(frame):,} rows: {difference:.2g}; threshold {model.threshold:.4f}"
    )


def print_report(outcome: Outcome) -> None:
    """The setup, then the two markdown tables, on stdout."""
    for key, value in outcome.setup.items():
        print(f"- {key}: {value}")
    for note in outcome.notes:
        print(f"- note: {note}")
    if outcome.in_process:
        print("\n### In process (core 0, one thread; median per call)\n")
        print(format_in_process_table(outcome.in_process))
    if outcome.http:
        print("\n### HTTP (server on core 0, wrk on core 1, 127.0.0.1)\n")
        print(format_http_table(outcome.http))
    if any(result.system in TABOPS_V2 for result in outcome.http):
        print("\n### Open Inference Protocol (V2): tabops' forms beside /v1 and MLServer\n")
        print(format_v2_table(outcome.http))
        print()
        for line in format_v2_targets(outcome.http):
            print(f"- {line}")


def missing_tool() -> str | None:
    """One line naming the first program the HTTP part needs that is not on PATH."""
    for tool, install in TOOLS.items():
        if shutil.which(tool) is None:
            return f"error: {tool} is not on PATH; install it ({install}) and run again"
    return None


def main() -> int:
    """Run the benchmark within ``--timeout`` seconds; returns the exit status."""
    args = parse_args()
    missing = missing_tool()
    if missing is not None:
        _say(missing)
        return 2
    outcome = Outcome()
    signal.signal(signal.SIGALRM, _raise_timeout)
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.alarm(args.timeout)
    status = 0
    work = Path(tempfile.mkdtemp(prefix="tabops-bench-"))
    try:
        run(args, work, outcome)
    except ModelSetupError as exc:
        _say(f"error: {exc}")
        status = 2
    except BenchTimeout:
        outcome.notes.append(f"stopped by the {args.timeout} s limit; results are partial")
        for result in outcome.http:
            if result.throughput is None and not result.note:
                result.flag("not measured: time limit")
        status = 1
    finally:
        signal.alarm(0)
        outcome.setup["load average at end (1, 5, 15 min)"] = _load_average()
        if args.keep:
            _say(f"work dir kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print_report(outcome)
    if args.json is not None:
        args.json.write_text(json.dumps(outcome.to_json(), indent=2) + "\n")
    return status


def _raise_timeout(_signal: int, _frame: FrameType | None) -> None:
    raise BenchTimeout


def _exit_on_signal(signal_number: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signal_number)  # runs every finally: servers are stopped


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
