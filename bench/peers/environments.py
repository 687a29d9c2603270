"""Virtualenvs under ``bench/.peers/`` for what the benchmark compares against, made once.

The peers (BentoML, MLServer) get one each, and so does granian, which is not a tabops
dependency: its virtualenv holds granian and tabops itself, installed in editable mode from
this repository, with every other package pinned to the version ``.venv`` has, so tabops on
granian runs the same code and libraries as ``tabops serve``.

A virtualenv holds a stamp file listing the requirements (and pins) it was installed with; a
later run reuses it when they are unchanged (the pins follow ``.venv``) and rebuilds it
otherwise. Progress goes to stderr; pip's own output to ``<name>-install.log``.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from peers.processes import last_line, run_logged

REPOSITORY = Path(__file__).resolve().parent.parent.parent
ROOT = REPOSITORY / "bench" / ".peers"
STAMP = ".bench-installed.json"


@dataclass(frozen=True)
class PeerEnvironment:
    """A peer's virtualenv, or why it could not be made."""

    name: str
    path: Path
    failure: str | None = None

    def executable(self, name: str) -> Path:
        """A console script installed in the virtualenv."""
        return self.path / "bin" / name

    def version(self, distribution: str) -> str:
        """The installed version of a distribution in the virtualenv, or "?"."""
        found = sorted(self.path.glob(f"lib/python*/site-packages/{distribution}-*.dist-info"))
        if not found:
            return "?"
        return found[0].name.removesuffix(".dist-info").removeprefix(f"{distribution}-")


def peer_requirements() -> dict[str, list[str]]:
    """What each peer's virtualenv installs; scikit-learn pinned to the version in .venv."""
    sklearn = f"scikit-learn=={metadata.version('scikit-learn')}"
    return {
        "bentoml": ["bentoml", "pandas", sklearn],
        # mlserver 1.7 installs uvloop's event loop itself (uvloop.install); kept below 0.22.
        "mlserver": ["mlserver", "mlserver-sklearn", "uvloop<0.22", sklearn],
    }


def granian_requirements() -> tuple[list[str], list[str]]:
    """granian's virtualenv: tabops (editable, this repository) and granian; then the pins."""
    return ["-e", str(REPOSITORY), "granian"], venv_pins()


def venv_pins() -> list[str]:
    """``name==version`` of every package in this interpreter's environment (``.venv``).

    Packages installed from a path or URL (tabops itself, in editable mode) are left out.
    """
    pins = set()
    for distribution in metadata.distributions():
        name = distribution.metadata["Name"]
        if name and distribution.read_text("direct_url.json") is None:
            pins.add(f"{name.lower().replace('_', '-')}=={distribution.version}")
    return sorted(pins)


def ensure_environment(
    name: str, requirements: list[str], timeout: float, pins: list[str] | None = None
) -> PeerEnvironment:
    """A virtualenv, installed now unless a matching stamp says it already is.

    With ``pins`` (pip constraints), it is made with this interpreter's Python, so that the
    pinned versions (taken from ``.venv``) have wheels for it; without, with ``python3``.
    """
    path = ROOT / name
    stamp = path / STAMP
    recorded: Any = requirements if pins is None else {"requirements": requirements, "pins": pins}
    if stamp.is_file() and json.loads(stamp.read_text()) == recorded:
        _say(f"{name}: reusing {path}")
        return PeerEnvironment(name, path)
    # Run from .venv, venv builds on the interpreter .venv was made from.
    python = sys.executable if pins is not None else shutil.which("python3")
    if python is None:
        return PeerEnvironment(name, path, "no python3 on PATH to create its virtualenv")
    log = path.parent / f"{name}-install.log"
    pinned = " (the rest pinned to .venv's versions)" if pins is not None else ""
    _say(f"{name}: creating {path} and installing {' '.join(requirements)}{pinned} (log: {log})")
    started = time.monotonic()
    if run_logged([python, "-m", "venv", "--clear", str(path)], log, timeout=timeout) != 0:
        return PeerEnvironment(name, path, f"python -m venv failed: {last_line(log)}")
    pip = [str(path / "bin" / "pip"), "install", "--disable-pip-version-check", "--quiet"]
    if pins is not None:
        constraints = path.parent / f"{name}-constraints.txt"
        constraints.write_text("".join(f"{pin}\n" for pin in pins))
        pip += ["--constraint", str(constraints)]
    remaining = max(timeout - (time.monotonic() - started), 1.0)
    if run_logged([*pip, *requirements], log, timeout=remaining) != 0:
        return PeerEnvironment(name, path, f"pip install failed: {last_line(log)}")
    stamp.write_text(json.dumps(recorded))
    _say(f"{name}: installed in {time.monotonic() - started:.0f} s")
    return PeerEnvironment(name, path)


def _say(text: str) -> None:
    print(f"[peers] {text}", file=sys.stderr, flush=True)
