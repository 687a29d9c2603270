"""Child processes of the benchmark: servers pinned to core 0, and logged one-off commands.

Every child starts in a session of its own, so stopping it stops its whole process group
(granian, BentoML and MLServer fork workers); nothing outlives the benchmark.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

SERVER_CORE = "0"
HOST = "127.0.0.1"
_STOP_SECONDS = 10.0

Header = tuple[str, str]
"""An HTTP header's name and value."""


class ServerStartError(RuntimeError):
    """A server exited or did not answer in time; the message is a one-line reason."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def last_line(path: Path) -> str:
    """The last non-blank line of a log, to give a failure a short reason."""
    if not path.is_file():
        return "(no output)"
    lines = [line.strip() for line in path.read_text(errors="replace").splitlines()]
    lines = [line for line in lines if line]
    return lines[-1][:200] if lines else "(no output)"


def run_logged(
    command: Sequence[str], log: Path, env: Mapping[str, str] | None = None, timeout: float = 900
) -> int:
    """Run a command to completion, its output appended to ``log``; returns its exit status."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as output:
        process = subprocess.Popen(
            list(command),
            stdout=output,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            start_new_session=True,
        )
        try:
            return process.wait(timeout=timeout)
        finally:
            stop_process(process)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Stop a process and its group: SIGTERM, then SIGKILL after a grace period."""
    if process.poll() is not None:
        _kill_group(process.pid, signal.SIGKILL)  # children it may have left behind
        return
    _kill_group(process.pid, signal.SIGTERM)
    with suppress(subprocess.TimeoutExpired):
        process.wait(timeout=_STOP_SECONDS)
    _kill_group(process.pid, signal.SIGKILL)
    process.wait()


def _kill_group(pid: int, signal_number: int) -> None:
    with suppress(ProcessLookupError):
        os.killpg(pid, signal_number)


@contextmanager
def pinned_server(
    command: Sequence[str], env: Mapping[str, str], cwd: Path, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """A server started on core 0 (``taskset``), stopped with its group on leaving."""
    log.parent.mkdir(parents=True, exist_ok=True)
    pinned = ["taskset", "-c", SERVER_CORE, *command]
    with log.open("wb") as output:
        output.write(f"$ cd {cwd} && {shlex.join(pinned)}\n".encode())
        output.flush()
        process = subprocess.Popen(
            pinned,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            stop_process(process)


def wait_until_answering(
    process: subprocess.Popen[bytes],
    url: str,
    body: bytes,
    log: Path,
    timeout: float,
    header: Header | None = None,
    media: Sequence[Header] = (),
) -> bytes:
    """Wait until a POST of ``body`` to ``url`` gets a 2xx answer; returns the answer.

    ``header``, when given, is sent with every attempt (an API key, for instance), and so
    is each of ``media``, the headers that describe a body other than JSON.

    Raises:
        ServerStartError: the process exited, or only errors came back within ``timeout``.
    """
    started = time.monotonic()
    problem = "no answer"
    while time.monotonic() - started < timeout:
        if process.poll() is not None:
            raise ServerStartError(f"exited with {process.returncode}: {last_line(log)}")
        try:
            request = _post(url, body, header, media)
            with urllib.request.urlopen(request, timeout=5) as response:
                answer: bytes = response.read()
                return answer
        except urllib.error.HTTPError as exc:
            problem = f"HTTP {exc.code}: {exc.read()[:200].decode(errors='replace')}"
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            problem = str(exc)
        time.sleep(0.25)
    raise ServerStartError(f"no 2xx answer within {timeout:.0f} s ({problem})")


def post_status(
    url: str, body: bytes, header: Header | None = None, media: Sequence[Header] = ()
) -> int:
    """The HTTP status a POST of ``body`` to ``url`` gets (one attempt).

    Raises:
        ServerStartError: no HTTP answer came back.
    """
    try:
        with urllib.request.urlopen(_post(url, body, header, media), timeout=5) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
        raise ServerStartError(f"no answer from {url}: {exc}") from exc


def _post(
    url: str, body: bytes, header: Header | None, media: Sequence[Header]
) -> urllib.request.Request:
    headers = {"Content-Type": "application/json", **dict(media)}
    if header is not None:
        headers[header[0]] = header[1]
    return urllib.request.Request(url, data=body, headers=headers, method="POST")
