"""What a per-request feature costs ``tabops serve``: API keys, or the prediction log.

Usage (from the repository root):
    .venv/bin/python bench/overhead.py [--compare key|log] [--home TABOPS_HOME]
                                       [--rounds 10] [--seconds 3] [--connections 16]

Two servers run over the same trained model, one with the feature and one without:
- ``key``: a home without keys (on 127.0.0.1 it lets anonymous callers in, but still asks
  the access policy on every request) against a copy holding a predict-scope key, sent
  ``Authorization: Bearer <key>`` on every request;
- ``log`` (the default): the prediction log off (``TABOPS_MONITORING__ENABLED=false``)
  against on, logging every prediction (sample rate 1.0, the default).
Both are pinned to core 0 and loaded in turn by wrk on core 1, one record per request:
A then B, B then A, for ``--rounds`` pairs. On a shared or virtual machine, throughput
drifts by tens of percent over a minute; alternating short runs exposes both servers to
the same drift, so the per-pair ratios say what the feature costs where two separate runs
cannot. Without ``--home``, the bundled heart-failure example is trained first (about a
minute).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

from peers.keys import make_keyed_home
from peers.models import tabops_environment
from peers.processes import HOST, Header, free_port, pinned_server, wait_until_answering
from wrk.load import run_wrk

REPOSITORY = Path(__file__).resolve().parent.parent
EXAMPLE = REPOSITORY / "examples" / "heart-failure" / "tabops.yaml"
EXAMPLE_TABLE = EXAMPLE.parent / "heart_failure_clinical_records_dataset.csv"
TARGET = "DEATH_EVENT"
TABOPS = Path(sys.executable).parent / "tabops"
MODEL = "heart-failure"
WARM_UP_SECONDS = 2


def parse_args() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", choices=("key", "log"), default="log", help="the feature")
    parser.add_argument("--home", type=Path, help="a trained TABOPS_HOME holding heart-failure")
    parser.add_argument("--rounds", type=int, default=10, help="pairs of measurements")
    parser.add_argument("--seconds", type=int, default=3, help="seconds per wrk measurement")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    return parser.parse_args()


def trained_home(work: Path) -> Path:
    """A home with the heart-failure example trained in it."""
    home = work / "home"
    env = {**tabops_environment(home), "NO_COLOR": "1"}
    subprocess.run(
        [str(TABOPS), "train", "-p", str(EXAMPLE)], env=env, check=True, capture_output=True
    )
    return home


def record_body(work: Path) -> Path:
    """The first patient of the example's table, as a JSON record, in a file for wrk."""
    with EXAMPLE_TABLE.open() as table:
        header, first = next(table).strip().split(","), next(table).strip().split(",")
    record = {name: float(value) for name, value in zip(header, first, strict=True)}
    record.pop(TARGET)
    path = work / "record.json"
    path.write_text(json.dumps(record))
    return path


def start(
    stack: ExitStack,
    home: Path,
    work: Path,
    body: Path,
    header: Header | None,
    settings: dict[str, str] | None = None,
) -> str:
    """Start ``tabops serve`` over ``home`` on core 0; its predict URL once it answers."""
    port = free_port()
    command = [str(TABOPS), "serve", "--host", HOST, "--port", str(port), "--log-level", "warning"]
    log = work / f"serve-{port}.log"
    env = {**tabops_environment(home), **(settings or {})}
    process = stack.enter_context(pinned_server(command, env, work, log))
    url = f"http://{HOST}:{port}/v1/models/{MODEL}/predict"
    wait_until_answering(process, url, body.read_bytes(), log, 90.0, header)
    return url


def start_pair(
    stack: ExitStack, compare: str, home: Path, work: Path, body: Path
) -> dict[str, tuple[str, Header | None]]:
    """The server without the feature, then the one with it: name -> (URL, header)."""
    if compare == "log":
        off = {"TABOPS_MONITORING__ENABLED": "false"}
        return {
            "log off": (start(stack, home, work, body, None, off), None),
            "log on": (start(stack, home, work, body, None), None),
        }
    keyed = make_keyed_home(home, work / "home-key")
    if keyed.failure:
        raise SystemExit(f"no key: {keyed.failure}")
    return {
        "no key": (start(stack, home, work, body, None), None),
        "API key": (start(stack, keyed.home, work, body, keyed.header), keyed.header),
    }


def measure(args: argparse.Namespace, work: Path) -> None:
    """Start both servers, alternate wrk runs between them, print the comparison."""
    home = args.home or trained_home(work)
    body = record_body(work)
    with ExitStack() as stack:
        servers = start_pair(stack, args.compare, home, work, body)
        for url, header in servers.values():
            run_wrk(url, body, args.connections, WARM_UP_SECONDS, header=header)
        rates: dict[str, list[float]] = {name: [] for name in servers}
        for round_number in range(args.rounds):
            order = list(servers) if round_number % 2 == 0 else list(reversed(servers))
            for name in order:
                url, header = servers[name]
                load = run_wrk(url, body, args.connections, args.seconds, header=header)
                if load.non_2xx or load.socket_errors:
                    raise SystemExit(f"{name}: {load.non_2xx} non-2xx, {load.socket_errors} errors")
                rates[name].append(load.requests_per_second)
    without, with_feature = list(rates)
    ratios = [b / a for a, b in zip(rates[without], rates[with_feature], strict=True)]
    print(f"one record per request, c{args.connections}, {args.rounds} pairs of {args.seconds} s")
    for name, values in rates.items():
        print(
            f"  {name}: median {statistics.median(values):,.0f} req/s "
            f"(min {min(values):,.0f}, max {max(values):,.0f})"
        )
    print(
        f"  {with_feature} / {without}, per pair: median {statistics.median(ratios):.3f} "
        f"(min {min(ratios):.3f}, max {max(ratios):.3f})"
    )
    print(f"  load average at the end: {os.getloadavg()[0]:.2f}")


def main() -> None:
    """Run the comparison in a temporary folder."""
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="tabops-overhead-bench-") as folder:
        measure(args, Path(folder))


if __name__ == "__main__":
    main()
