"""Fixtures of the command-line tests: the CLI runner and the TABOPS_HOME its commands use."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from tabops.cli.main import app
from tabops.config import get_settings

Invoke = Callable[..., Result]


@pytest.fixture
def use_home(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[Callable[[Path], None]]:
    """Point TABOPS_HOME at a folder for the commands run by this test.

    The terminal is as wide as the test module's ``CLI_COLUMNS`` (120 by default); no
    signing key or registry URL of the environment leaks in.
    """
    monkeypatch.setenv("COLUMNS", str(getattr(request.module, "CLI_COLUMNS", 120)))
    for name in ("TABOPS_SIGNING_KEY", "TABOPS_REGISTRY__URL", "TABOPS_REGISTRY_URL"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()

    def use(home: Path) -> None:
        monkeypatch.setenv("TABOPS_HOME", str(home))
        get_settings.cache_clear()

    yield use
    get_settings.cache_clear()


@pytest.fixture
def invoke() -> Invoke:
    """Run ``tabops`` with the given arguments in this process."""
    runner = CliRunner()

    def run(*args: object) -> Result:
        return runner.invoke(app, [str(arg) for arg in args])

    return run


@pytest.fixture
def trained_cli(use_home: Callable[[Path], None], home: Path) -> Path:
    """The CLI pointed at a private copy of the trained home."""
    use_home(home)
    return home


@pytest.fixture
def empty_cli(use_home: Callable[[Path], None], tmp_path: Path) -> Path:
    """The CLI pointed at an empty home."""
    home = tmp_path / "empty-home"  # beside, not inside, a copied trained home
    use_home(home)
    return home
