"""The HTTP scenarios, and one server measured under each of them.

A server is started pinned to core 0, must answer both of its requests with a 2xx (and,
when it reports one, the probability scikit-learn computes, read from JSON or binary
data), then each scenario gets a 1 s warm-up and a measured run of wrk at the same
concurrency. A server whose requests carry a header (an API key) is flagged when it
answers a request without it all the same.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from peers.processes import (
    HOST,
    ServerStartError,
    free_port,
    pinned_server,
    post_status,
    wait_until_answering,
)
from peers.systems import BATCH_ROWS, Endpoint, Server

from wrk.load import LoadError, LoadResult, run_wrk

WARM_UP_SECONDS = 1
START_SECONDS = 90.0
# tabops may answer from an ONNX compilation of the pipeline, kept within 1e-5 of scikit-learn.
_SAME_PROBABILITY = 1e-5


@dataclass(frozen=True)
class Scenario:
    """Records per request and concurrent connections."""

    name: str
    rows: int
    connections: int

    @property
    def is_batch(self) -> bool:
        """Whether each request carries a batch of records."""
        return self.rows > 1


SCENARIOS = (
    Scenario("1 row, c1", 1, 1),
    Scenario("1 row, c16", 1, 16),
    Scenario(f"{BATCH_ROWS} rows, c4", BATCH_ROWS, 4),
)


@dataclass
class HttpResult:
    """One system, model and scenario: throughput and latency, or why there is none."""

    system: str
    model: str
    scenario: str
    rows_per_request: int
    requests_per_second: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    requests: int = 0
    non_2xx: int = 0
    socket_errors: int = 0
    note: str = ""

    @property
    def throughput(self) -> float | None:
        """Requests per second for single records, rows per second for batches."""
        if self.requests_per_second is None:
            return None
        return self.requests_per_second * self.rows_per_request

    def record(self, load: LoadResult) -> None:
        """Keep a wrk run's figures, flagging anything but clean answers."""
        self.requests_per_second = load.requests_per_second
        self.p50_ms, self.p99_ms = load.p50_ms, load.p99_ms
        self.requests, self.non_2xx = load.requests, load.non_2xx
        self.socket_errors = load.socket_errors
        if load.non_2xx:
            self.flag(f"FLAG {load.non_2xx} non-2xx of {load.requests}")
        if load.socket_errors:
            self.flag(f"FLAG {load.socket_errors} socket errors")

    def flag(self, text: str) -> None:
        """Add a remark to the row's note."""
        self.note = f"{self.note}; {text}" if self.note else text


def measure_server(
    server: Server, seconds: int, logs: Path, expected: float | None, into: list[HttpResult]
) -> None:
    """Start one server and run every scenario against it; a failure becomes the rows' note.

    The rows are appended to ``into`` first and filled in as they are measured, so a run
    cut short by the time limit keeps what it measured. ``expected`` is scikit-learn's
    probability for the single record, checked against every answer that reports one.
    """
    results = [
        HttpResult(server.system, server.model, scenario.name, scenario.rows)
        for scenario in SCENARIOS
    ]
    into.extend(results)
    if server.failure is not None:
        _failed(results, server.failure)
        return
    port = free_port()
    base = f"http://{HOST}:{port}"
    log = logs / (re.sub(r"[^A-Za-z0-9]+", "-", f"{server.system} {server.model}") + ".log")
    _say(f"{server.system} [{server.model}]: starting on port {port} (log: {log})")
    with pinned_server(server.command(port), server.env, server.cwd, log) as process:
        try:
            answers = [
                wait_until_answering(
                    process,
                    base + endpoint.path,
                    endpoint.body.read_bytes(),
                    log,
                    START_SECONDS,
                    endpoint.header,
                    endpoint.media,
                )
                for endpoint in (server.single, server.batch)
            ]
            unchecked = _header_unchecked(base, server.single)
        except ServerStartError as exc:
            _failed(results, str(exc))
            return
        mismatch = _probability_mismatch(server, answers[0], expected)
        flags = "; ".join(flag for flag in (mismatch, unchecked) if flag)
        for scenario, result in zip(SCENARIOS, results, strict=True):
            if process.poll() is not None:
                result.flag(f"server exited with {process.returncode}")
                continue
            if flags:
                result.flag(flags)
            endpoint = server.batch if scenario.is_batch else server.single
            url, body, connections = base + endpoint.path, endpoint.body, scenario.connections
            header, media = endpoint.header, endpoint.media
            try:
                run_wrk(url, body, connections, WARM_UP_SECONDS, header=header, media=media)
                result.record(run_wrk(url, body, connections, seconds, header=header, media=media))
            except LoadError as exc:
                result.flag(str(exc).splitlines()[0])
            _say(f"  {scenario.name}: {_summary(result)}")


def _failed(results: list[HttpResult], reason: str) -> None:
    _say(f"  skipped: {reason}")
    for result in results:
        result.flag(reason)


def _probability_mismatch(server: Server, answer: bytes, expected: float | None) -> str:
    """A flag when the server's probability for the single record is not scikit-learn's."""
    if server.read_probability is None or expected is None:
        return ""
    try:
        observed = server.read_probability(answer)
    except (ValueError, KeyError, IndexError, TypeError):
        return f"FLAG unreadable answer: {answer[:80].decode(errors='replace')}"
    if abs(observed - expected) > _SAME_PROBABILITY:
        return f"FLAG answers p={observed:.6g}, scikit-learn p={expected:.6g}"
    return ""


def _header_unchecked(base: str, endpoint: Endpoint) -> str:
    """A flag when a server sent a header (an API key) answers without it all the same."""
    if endpoint.header is None:
        return ""
    status = post_status(base + endpoint.path, endpoint.body.read_bytes(), media=endpoint.media)
    if 200 <= status < 300:
        return f"FLAG answers {status} without its {endpoint.header[0]} header"
    return ""


def _summary(result: HttpResult) -> str:
    if result.throughput is None:
        return result.note
    unit = "rows/s" if result.rows_per_request > 1 else "req/s"
    return (
        f"{result.throughput:,.0f} {unit}, p50 {result.p50_ms:.2f} ms, "
        f"p99 {result.p99_ms:.2f} ms {result.note}"
    ).rstrip()


def _say(text: str) -> None:
    print(f"[http] {text}", file=sys.stderr, flush=True)
