"""A copy of the benchmark's tabops home with an API key in it, so that tabops checks a key.

``tabops serve`` on 127.0.0.1 lets anonymous callers in while its metadata database holds no
key; once one exists, every request must carry a valid key. The copy gets one predict-scope
key, made with ``tabops keys create`` under the same environment the server runs with, and
the server over the copy is sent the key's token on every request.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from peers.models import tabops_environment
from peers.processes import Header

KEY_NAME = "bench"
KEY_SCOPE = "predict"


@dataclass(frozen=True)
class KeyedHome:
    """A tabops home holding one API key, and the key's token; or why it could not be made."""

    home: Path
    token: str = ""
    failure: str | None = None

    @property
    def header(self) -> Header:
        """The header that carries the key."""
        return "Authorization", f"Bearer {self.token}"


def make_keyed_home(home: Path, copy: Path) -> KeyedHome:
    """Copy ``home`` (models, registry, metadata database) to ``copy`` and create a key there."""
    # Imported here, so that a tabops without keys can still run the other systems.
    from tabops.security.tokens import token_prefix

    shutil.copytree(home, copy)
    tabops = str(Path(sys.executable).parent / "tabops")
    created = subprocess.run(
        [tabops, "keys", "create", KEY_NAME, "--scope", KEY_SCOPE],
        capture_output=True,
        text=True,
        env={**tabops_environment(copy), "NO_COLOR": "1"},
        timeout=120,
        check=False,
    )
    # The token is printed alone on its line; it is the one line that reads as a token.
    lines = [line.strip() for line in created.stdout.splitlines()]
    tokens = [line for line in lines if token_prefix(line) is not None]
    if created.returncode != 0 or len(tokens) != 1:
        output = (created.stderr or created.stdout).strip().splitlines()
        reason = output[-1][:200] if output else "(no output)"
        return KeyedHome(copy, failure=f"tabops keys create exited {created.returncode}: {reason}")
    return KeyedHome(copy, tokens[0])
