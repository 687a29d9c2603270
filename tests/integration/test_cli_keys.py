"""``tabops keys``, ``tabops audit`` and the start-up rule of ``tabops serve``, through Typer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from conftest import SEED_REQUEST
from tabops.cli.main import app
from tabops.config import Settings, get_settings
from tabops.server.app import create_app

PREDICT = "/v1/models/heart-failure/predict"


@pytest.fixture
def cli(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("TABOPS_HOME", str(home))
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_a_key_created_on_the_command_line_works_over_the_api(cli, home):
    created = cli.invoke(app, ["keys", "create", "batch-scorer", "--scope", "predict"])
    assert created.exit_code == 0, created.output
    token = created.output.strip().splitlines()[-2].strip()
    assert token.startswith("tabops_")
    with TestClient(create_app(Settings(home=home))) as api:
        assert api.post(PREDICT, content=SEED_REQUEST).status_code == 401
        answer = api.post(PREDICT, content=SEED_REQUEST, headers={"X-API-Key": token})
        assert answer.status_code == 200
    listed = cli.invoke(app, ["keys", "list"])
    assert "batch-scorer" in listed.output
    assert "active" in listed.output
    assert token not in listed.output


def test_a_revoked_key_is_refused_and_both_actions_are_audited(cli, home):
    created = cli.invoke(app, ["keys", "create", "old", "--scope", "read", "--expires", "2w"])
    token = created.output.strip().splitlines()[-2].strip()
    prefix = token.split("_")[1]
    revoked = cli.invoke(app, ["keys", "revoke", prefix])
    assert revoked.exit_code == 0, revoked.output
    with TestClient(create_app(Settings(home=home))) as api:
        assert api.get("/v1/models", headers={"X-API-Key": token}).status_code == 401
    audit = cli.invoke(app, ["audit"])
    assert "tabops keys create" in audit.output
    assert "tabops keys revoke" in audit.output
    assert "command line" in audit.output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--scope", "root"], "unknown scope 'root'"),
        (["--scope", "read", "--expires", "soon"], "--expires"),
        (["--scope", "admin", "--model", "heart-failure"], "cannot be limited"),
    ],
)
def test_a_key_that_could_not_work_is_refused(cli, args, expected):
    result = cli.invoke(app, ["keys", "create", "k", *args])
    assert result.exit_code != 0
    assert expected in result.output


def test_serve_refuses_an_open_server_off_loopback(cli, monkeypatch):
    # serve exports its address for the app; set it here so the test's value is undone.
    monkeypatch.setenv("TABOPS_SERVING__HOST", "127.0.0.1")
    result = cli.invoke(app, ["serve", "--host", "0.0.0.0"])  # refused before binding
    assert result.exit_code != 0
    assert "no API key exists" in result.output
    assert "--insecure" in result.output
    assert get_settings().serving.host == "0.0.0.0"  # what serve exported
