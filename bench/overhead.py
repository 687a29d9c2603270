"""What a per-request feature or request form costs ``tabops serve``, in alternating runs.

Usage (from the repository root):
    .venv/bin/python bench/overhead.py [--compare key|log|v2] [--home TABOPS_HOME]
                                       [--rounds 10] [--seconds 3] [--connections 16]

Two servers run over the same trained model, one with the feature and one without:
- ``key``: a home without keys (on 127.0.0.1 it lets anonymous callers in, but still asks
  the access policy on every request) against a copy holding a predict-scope key, sent
  ``Authorization: Bearer <key>`` on every request;
- ``log`` (the default): the prediction log off (``TABOPS_MONITORING__ENABLED=false``)
  against on, logging every prediction (sample rate 1.0, the default).
Or one server, sent the same record in several forms:
- ``v2``: ``/v1/models/{name}/predict`` against the Open Inference Protocol's
  ``/v2/models/{name}/infer`` with one tensor per feature, one ``[1, k]`` FP64 JSON tensor,
  and that tensor as binary data (``bench/protocols.py`` writes the bodies).
Servers are pinned to core 0 and loaded in turn by wrk on core 1, one record per request:
A then B, B then A, for ``--rounds`` rounds. On a shared or virtual machine, throughput
drifts by tens of percent over a minute; alternating short runs exposes every contender to
the same drift, so the per-round ratios say what the feature costs where separate runs
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
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from peers.keys import make_keyed_home
from peers.models import tabops_environment
from peers.processes import HOST, Header, free_port, pinned_server, wait_until_answering
from protocols import binary_tensor, one_tensor, per_feature
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
    parser.add_argument("--compare", choices=("key", "log", "v2"), default="log", help="what")
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


def first_record() -> dict[str, float]:
    """The first patient of the example's table."""
    with EXAMPLE_TABLE.open() as table:
        header, first = next(table).strip().split(","), next(table).strip().split(",")
    record = {name: float(value) for name, value in zip(header, first, strict=True)}
    record.pop(TARGET)
    return record


def record_body(work: Path) -> Path:
    """The first patient of the example's table, as a JSON record, in a file for wrk."""
    path = work / "record.json"
    path.write_text(json.dumps(first_record()))
    return path


@dataclass(frozen=True)
class Contender:
    """One side of the comparison: where wrk posts, what, and with which headers."""

    url: str
    body: Path
    header: Header | None = None
    media: tuple[Header, ...] = ()


def v2_contenders(url: str, work: Path) -> dict[str, Contender]:
    """The V2 request forms of the first record, against the server whose predict URL is given."""
    record = first_record()
    # Typed as the model's metadata gives them: whole numbers as INT64, flags as BOOL.
    first = pd.read_csv(EXAMPLE_TABLE, nrows=1).drop(columns=[TARGET])
    typed = [{str(name): value for name, value in row.items()} for row in first.to_dict("records")]
    infer = url.replace(f"/v1/models/{MODEL}/predict", f"/v2/models/{MODEL}/infer")
    columns, tensor, binary = work / "v2-columns.json", work / "v2-tensor.json", work / "v2.bin"
    columns.write_bytes(per_feature(typed))
    tensor.write_bytes(one_tensor([record]))
    data, headers = binary_tensor([record])
    binary.write_bytes(data)
    return {
        "V2 per feature": Contender(infer, columns),
        "V2 one JSON tensor": Contender(infer, tensor),
        "V2 binary tensor": Contender(infer, binary, media=headers),
    }


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


def contenders(stack: ExitStack, compare: str, home: Path, work: Path) -> dict[str, Contender]:
    """The baseline first, then what is set beside it: name -> what wrk sends where."""
    body = record_body(work)
    if compare == "log":
        off = {"TABOPS_MONITORING__ENABLED": "false"}
        return {
            "log off": Contender(start(stack, home, work, body, None, off), body),
            "log on": Contender(start(stack, home, work, body, None), body),
        }
    if compare == "v2":
        url = start(stack, home, work, body, None)
        return {"/v1 predict": Contender(url, body), **v2_contenders(url, work)}
    keyed = make_keyed_home(home, work / "home-key")
    if keyed.failure:
        raise SystemExit(f"no key: {keyed.failure}")
    return {
        "no key": Contender(start(stack, home, work, body, None), body),
        "API key": Contender(
            start(stack, keyed.home, work, body, keyed.header), body, keyed.header
        ),
    }


def load(contender: Contender, connections: int, seconds: int) -> float:
    """Requests per second of one wrk run; every answer must be a 2xx."""
    done = run_wrk(
        contender.url,
        contender.body,
        connections,
        seconds,
        header=contender.header,
        media=contender.media,
    )
    if done.non_2xx or done.socket_errors:
        raise SystemExit(f"{contender.url}: {done.non_2xx} non-2xx, {done.socket_errors} errors")
    return done.requests_per_second


def measure(args: argparse.Namespace, work: Path) -> None:
    """Start the servers, alternate wrk runs between the contenders, print the comparison."""
    home = args.home or trained_home(work)
    with ExitStack() as stack:
        sides = contenders(stack, args.compare, home, work)
        for contender in sides.values():
            load(contender, args.connections, WARM_UP_SECONDS)
        rates: dict[str, list[float]] = {name: [] for name in sides}
        for round_number in range(args.rounds):
            order = list(sides) if round_number % 2 == 0 else list(reversed(sides))
            for name in order:
                rates[name].append(load(sides[name], args.connections, args.seconds))
    baseline, *others = list(rates)
    print(f"one record per request, c{args.connections}, {args.rounds} rounds of {args.seconds} s")
    for name, values in rates.items():
        print(
            f"  {name}: median {statistics.median(values):,.0f} req/s "
            f"(min {min(values):,.0f}, max {max(values):,.0f})"
        )
    for name in others:
        ratios = [b / a for a, b in zip(rates[baseline], rates[name], strict=True)]
        print(
            f"  {name} / {baseline}, per round: median {statistics.median(ratios):.3f} "
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
