"""Run wrk against one URL with one body and read its summary.

wrk runs with one thread pinned to core 1 (the servers get core 0), POSTs the body (JSON
unless a header says otherwise) through ``post.lua`` and prints a latency distribution
(``--latency``), from which the 50th and 99th percentiles are taken. Responses outside
2xx/3xx and socket errors are counted, not hidden.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from peers.processes import Header

SCRIPT = Path(__file__).resolve().parent / "post.lua"
LOAD_CORE = "1"
_UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_RATE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_TOTAL = re.compile(r"^\s*(\d+) requests in", re.MULTILINE)
_PERCENTILE = re.compile(r"^\s*(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.MULTILINE)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


class LoadError(RuntimeError):
    """wrk failed or printed no summary."""


@dataclass(frozen=True)
class LoadResult:
    """What one wrk run measured."""

    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: int

    @property
    def is_clean(self) -> bool:
        """Whether every request got a 2xx or 3xx answer without a socket error."""
        return self.non_2xx == 0 and self.socket_errors == 0


def parse_wrk_output(text: str) -> LoadResult:
    """The figures in wrk's printed summary (run with ``--latency``).

    Raises:
        LoadError: the summary lacks the rate or the 50th and 99th percentiles.
    """
    rate = _RATE.search(text)
    total = _TOTAL.search(text)
    percentiles = {
        share: float(value) * _UNIT_MS[unit] for share, value, unit in _PERCENTILE.findall(text)
    }
    if rate is None or total is None or not {"50", "99"} <= percentiles.keys():
        raise LoadError(f"wrk printed no complete summary:\n{text.strip()}")
    non_2xx = _NON_2XX.search(text)
    socket = _SOCKET.search(text)
    return LoadResult(
        requests_per_second=float(rate.group(1)),
        p50_ms=percentiles["50"],
        p99_ms=percentiles["99"],
        requests=int(total.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(count) for count in socket.groups()) if socket else 0,
    )


def run_wrk(
    url: str,
    body: Path,
    connections: int,
    seconds: int,
    script: Path = SCRIPT,
    header: Header | None = None,
    media: Sequence[Header] = (),
) -> LoadResult:
    """POST ``body`` to ``url`` over ``connections`` connections for ``seconds`` seconds.

    Another ``script`` may read ``body`` differently (``entities.lua`` reads ids from it).
    ``header`` (a credential) and each of ``media`` (headers that describe a body other than
    JSON) are sent with every request; ``post.lua`` reads them after the body file.

    Raises:
        LoadError: wrk exited with an error or printed no summary.
    """
    command = [
        "taskset",
        "-c",
        LOAD_CORE,
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
        url,
        str(body),
    ]
    headers = [*media, *([header] if header is not None else [])]
    command.extend(f"{name}: {value}" for name, value in headers)
    # subprocess.run kills wrk on any exception, the global timeout's included.
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 30, check=False
    )
    if done.returncode != 0:
        raise LoadError(f"wrk exited with {done.returncode}: {done.stderr.strip()}")
    return parse_wrk_output(done.stdout)
