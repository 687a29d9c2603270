"""``tabops models card`` through Typer's CliRunner, against a real registry on disk."""

from __future__ import annotations

import os
import stat
import webbrowser
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from conftest import stub_manifest
from tabops.cli.main import app
from tabops.config import Settings, get_settings
from tabops.model.files import CARD_FILE
from tabops.registry import LocalArtifactStore, ModelRegistry

Invoke = Callable[..., Result]
MODEL = "demo"
CARD = "<!DOCTYPE html>\n<html><body><h1>demo</h1><p>Käse ± 0.91</p></body></html>\n".encode()


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """A TABOPS_HOME for this test, seen by the commands it runs."""
    home = tmp_path / "home"
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("TABOPS_HOME", str(home))
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


@pytest.fixture
def registry(home: Path) -> ModelRegistry:
    return ModelRegistry(LocalArtifactStore(Settings(home=home).registry_path))


@pytest.fixture
def invoke() -> Invoke:
    runner = CliRunner()

    def run(*args: object) -> Result:
        return runner.invoke(app, ["models", "card", *(str(arg) for arg in args)])

    return run


def register(registry: ModelRegistry, card: bytes | None = CARD) -> int:
    files = {"model.skops": b"x"} | ({CARD_FILE: card} if card is not None else {})
    return registry.register(MODEL, files, stub_manifest()).version


def text(result: Result) -> str:
    return " ".join(result.output.split())


def assert_clean_failure(result: Result) -> None:
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert "error:" in result.output


def test_models_card_writes_the_stored_card_to_the_output_path(registry, invoke, tmp_path):
    register(registry)
    target = tmp_path / "out" / "card.html"
    target.parent.mkdir()
    result = invoke(MODEL, "--output", target)
    assert result.exit_code == 0, result.output
    assert target.read_bytes() == CARD
    assert str(target) in text(result)
    assert sorted(os.listdir(target.parent)) == ["card.html"]  # no temp file left behind


def test_models_card_writes_a_readable_file_not_a_private_one(registry, invoke, tmp_path):
    register(registry)
    target = tmp_path / "card.html"
    previous = os.umask(0o022)
    try:
        assert invoke(MODEL, "-o", target).exit_code == 0
    finally:
        os.umask(previous)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_models_card_defaults_to_name_and_version_in_the_working_directory(
    registry, invoke, tmp_path, monkeypatch
):
    register(registry)
    monkeypatch.chdir(tmp_path)
    result = invoke(f"{MODEL}@production")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "demo-1-card.html").read_bytes() == CARD
    assert "demo-1-card.html" in text(result)


def test_models_card_picks_the_version_asked_for(registry, invoke, tmp_path):
    register(registry, b"<html>first</html>")
    register(registry, b"<html>second</html>")
    target = tmp_path / "card.html"
    target.write_bytes(b"old")
    assert invoke(f"{MODEL}:2", "-o", target).exit_code == 0
    assert target.read_bytes() == b"<html>second</html>"
    assert invoke(MODEL, "-o", target).exit_code == 0  # production is the first version
    assert target.read_bytes() == b"<html>first</html>"


def test_models_card_fails_cleanly_for_a_version_without_a_card(registry, invoke, tmp_path):
    register(registry, card=None)
    target = tmp_path / "card.html"
    result = invoke(f"{MODEL}:1", "-o", target)
    assert_clean_failure(result)
    assert "demo:1 has no model card" in text(result)
    assert not target.exists()


@pytest.mark.parametrize("ref", ["missing", f"{MODEL}:7", f"{MODEL}@staging"])
def test_models_card_fails_cleanly_for_an_unknown_model_or_version(registry, invoke, ref):
    register(registry)
    result = invoke(ref)
    assert_clean_failure(result)


def test_models_card_fails_cleanly_when_the_output_folder_is_missing(registry, invoke, tmp_path):
    register(registry)
    result = invoke(MODEL, "-o", tmp_path / "nowhere" / "card.html")
    assert_clean_failure(result)
    assert "cannot write" in text(result)


def test_models_card_open_hands_the_written_file_to_the_browser(
    registry, invoke, tmp_path, monkeypatch
):
    register(registry)
    opened: list[str] = []
    monkeypatch.setattr(webbrowser, "open", opened.append)
    target = tmp_path / "card.html"
    result = invoke(MODEL, "-o", target, "--open")
    assert result.exit_code == 0, result.output
    assert opened == [target.resolve().as_uri()]
