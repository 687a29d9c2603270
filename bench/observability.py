"""What request metrics, request ids and JSON access logs cost on the fast path.

Usage (from the repository root):
    .venv/bin/python bench/observability.py [--rounds 5] [--duration 5] [--connections 1,16]
                                            [--variants plain,multiprocess,json-access]
                                            [--base-src PATH] [--home PATH]

Trains the heart-failure example (logistic regression only, a few seconds) into a temp home
unless ``--home`` names one, then measures single-record ``POST /predict`` throughput with wrk
(server pinned to core 0 with one worker, wrk to core 1, 1 s warm-up) for each variant,
alternating the variants round after round so that drift of the machine hits all alike.
Prints each variant's median requests/s and its ratio to the first variant.

With ``--asgi N`` the same variants are timed without HTTP: N requests through the app's ASGI
callable in a fresh child process pinned to core 0, in CPU microseconds per request, which a
machine busy with other work disturbs far less than wrk's throughput.

Variants: ``plain`` (``tabops serve`` as configured by default), ``multiprocess`` (the same
with ``PROMETHEUS_MULTIPROC_DIR`` set, as under ``--workers N``), ``json-access`` (``--log-format
json --access-log``, lines sent to a file), and ``base`` (``--base-src``: another source tree
served by the same virtualenv, e.g. the code before a change, through ``PYTHONPATH``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from peers.models import train_fast_example
from peers.processes import HOST, free_port, pinned_server, wait_until_answering
from wrk.load import run_wrk

TABOPS = Path(sys.executable).parent / "tabops"
RECORD = (
    b'{"age": 60, "anaemia": 0, "creatinine_phosphokinase": 250, "diabetes": 0,'
    b' "ejection_fraction": 38, "high_blood_pressure": 0, "platelets": 262000,'
    b' "serum_creatinine": 1.1, "serum_sodium": 137, "sex": 1, "smoking": 0, "time": 115}'
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="measurements per variant")
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk measurement")
    parser.add_argument("--connections", default="1,16", help="comma-separated wrk -c values")
    parser.add_argument("--variants", default="plain,multiprocess,json-access")
    parser.add_argument("--base-src", type=Path, help="source tree of the 'base' variant")
    parser.add_argument("--home", type=Path, help="a TABOPS_HOME with a trained model")
    parser.add_argument(
        "--asgi",
        type=int,
        metavar="N",
        help="instead of wrk: N requests through the app's ASGI callable in a child process "
        "per variant and round, timed in CPU seconds (steadier on a busy machine)",
    )
    parser.add_argument(
        "--child", nargs=3, metavar=("VARIANT", "HOME", "N"), help=argparse.SUPPRESS
    )
    return parser.parse_args()


@contextmanager
def served(variant: str, home: Path, work: Path, base_src: Path | None) -> Iterator[str]:
    """``tabops serve`` for one variant; yields the URL of ``POST /predict``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("TABOPS_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env |= {"TABOPS_HOME": str(home)}
    port = free_port()
    command = [str(TABOPS), "serve", "--host", HOST, "--port", str(port), "--log-level", "warning"]
    if variant == "multiprocess":
        folder = work / "metrics" / str(port)
        folder.mkdir(parents=True)
        env["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    elif variant == "json-access":
        command += ["--log-format", "json", "--access-log"]
    elif variant == "base":
        if base_src is None:
            raise SystemExit("the 'base' variant needs --base-src")
        env["PYTHONPATH"] = str(base_src)
    log = work / "logs" / f"{variant}-{port}.log"
    url = f"http://{HOST}:{port}/predict"
    with pinned_server(command, env, work, log) as process:
        wait_until_answering(process, url, RECORD, log, timeout=90)
        yield url


def asgi_child(variant: str, home: Path, count: int) -> None:
    """Time ``count`` single-record requests through the app's ASGI callable; print us/request."""
    import asyncio
    import logging
    import time

    from tabops.config import Settings
    from tabops.server.app import create_app

    options = {}
    if variant == "json-access":
        from tabops.logs import ACCESS_LOGGER, JsonFormatter, LogOptions

        handler = logging.FileHandler(home.parent / "access.log")
        handler.setFormatter(JsonFormatter())
        logging.getLogger(ACCESS_LOGGER).addHandler(handler)
        logging.getLogger(ACCESS_LOGGER).setLevel(logging.INFO)
        options["log_options"] = LogOptions("json", is_access_logged=True)
    app = create_app(Settings(home=home), **options)
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/predict",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 5000),
    }
    statuses: list[int] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": RECORD, "more_body": False}

    async def send(message: dict[str, object]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(int(message["status"]))  # type: ignore[call-overload]

    async def run() -> float:
        async with app.router.lifespan_context(app):
            for _ in range(200):  # warm-up
                await app(dict(scope), receive, send)
            started = time.process_time()
            for _ in range(count):
                await app(dict(scope), receive, send)
            return time.process_time() - started

    seconds = asyncio.run(run())
    if set(statuses) != {200}:
        raise SystemExit(f"{variant}: answers other than 200: {sorted(set(statuses))}")
    print(f"{seconds / count * 1e6:.2f}")


def measure_asgi(variant: str, home: Path, work: Path, base_src: Path | None, count: int) -> float:
    """Microseconds of CPU per request for one variant, from a fresh child process."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("TABOPS_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if variant == "multiprocess":
        folder = Path(tempfile.mkdtemp(dir=work))
        env["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    elif variant == "base":
        if base_src is None:
            raise SystemExit("the 'base' variant needs --base-src")
        env["PYTHONPATH"] = str(base_src)
    command = ["taskset", "-c", "0", sys.executable, __file__, "--child", variant, str(home)]
    done = subprocess.run(
        [*command, str(count)], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{variant}: {done.stderr.strip()[-2000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def measure_http(
    variant: str,
    home: Path,
    work: Path,
    base_src: Path | None,
    body: Path,
    connections: int,
    seconds: int,
) -> float:
    """Requests per second of one variant over ``connections`` wrk connections."""
    with served(variant, home, work, base_src) as url:
        run_wrk(url, body, connections, 1)  # warm-up
        result = run_wrk(url, body, connections, seconds)
    if not result.is_clean:
        raise SystemExit(f"{variant}: non-2xx answers or socket errors")
    return result.requests_per_second


def main() -> int:
    args = parse_args()
    if args.child:
        variant, home, count = args.child
        asgi_child(variant, Path(home), int(count))
        return 0
    variants = args.variants.split(",")
    connections = [0] if args.asgi else [int(value) for value in args.connections.split(",")]
    unit = "us CPU/request" if args.asgi else "req/s"
    figures: dict[tuple[str, int], list[float]] = {
        (v, c): [] for v in variants for c in connections
    }
    with tempfile.TemporaryDirectory(prefix="tabops-obs-bench-") as temp:
        work = Path(temp)
        home = args.home or train_fast_example(work)
        body = work / "record.json"
        body.write_bytes(RECORD)
        for round_number in range(args.rounds):
            order = variants if round_number % 2 == 0 else variants[::-1]
            for variant in order:
                for count in connections:
                    if args.asgi:
                        figure = measure_asgi(variant, home, work, args.base_src, args.asgi)
                    else:
                        figure = measure_http(
                            variant, home, work, args.base_src, body, count, args.duration
                        )
                    figures[(variant, count)].append(figure)
                    print(
                        f"round {round_number + 1} {variant:>12} c{count:<3} {figure:>9.1f} {unit}",
                        file=sys.stderr,
                    )
    print(f"| variant | connections | median {unit} | runs | x first |")
    print("|---|---|---|---|---|")
    for count in connections:
        first = statistics.median(figures[(variants[0], count)])
        for variant in variants:
            values = figures[(variant, count)]
            median = statistics.median(values)
            runs = " ".join(f"{value:.1f}" for value in values)
            shown = count if count else "in process"
            print(f"| {variant} | {shown} | {median:.1f} | {runs} | {median / first:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
