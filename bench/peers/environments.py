"""Virtualenvs of the peers (BentoML, MLServer) under ``bench/.peers/``, made once and reused.

A peer's virtualenv holds a stamp file listing the requirements it was installed with; a
later run reuses it when the list is unchanged (the scikit-learn pin follows ``.venv``) and
rebuilds it otherwise. Progress goes to stderr; pip's own output to ``install.log``.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from peers.processes import last_line, run_logged

ROOT = Path(__file__).resolve().parent.parent / ".peers"
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


def ensure_environment(name: str, requirements: list[str], timeout: float) -> PeerEnvironment:
    """The peer's virtualenv, installed now unless a matching stamp says it already is."""
    path = ROOT / name
    stamp = path / STAMP
    if stamp.is_file() and json.loads(stamp.read_text()) == requirements:
        _say(f"{name}: reusing {path}")
        return PeerEnvironment(name, path)
    python = shutil.which("python3")
    if python is None:
        return PeerEnvironment(name, path, "no python3 on PATH to create its virtualenv")
    log = path.parent / f"{name}-install.log"
    _say(f"{name}: creating {path} and installing {' '.join(requirements)} (log: {log})")
    started = time.monotonic()
    if run_logged([python, "-m", "venv", "--clear", str(path)], log, timeout=timeout) != 0:
        return PeerEnvironment(name, path, f"python3 -m venv failed: {last_line(log)}")
    pip = [str(path / "bin" / "pip"), "install", "--disable-pip-version-check", "--quiet"]
    remaining = max(timeout - (time.monotonic() - started), 1.0)
    if run_logged([*pip, *requirements], log, timeout=remaining) != 0:
        return PeerEnvironment(name, path, f"pip install failed: {last_line(log)}")
    stamp.write_text(json.dumps(requirements))
    _say(f"{name}: installed in {time.monotonic() - started:.0f} s")
    return PeerEnvironment(name, path)


def _say(text: str) -> None:
    print(f"[peers] {text}", file=sys.stderr, flush=True)
