from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from tabops.config import Settings


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith("TABOPS_"):
            monkeypatch.delenv(name)


def test_sections_have_their_defaults():
    settings = Settings()
    assert settings.home == Path(".tabops")
    assert settings.serving.max_batch_rows == 10_000
    assert settings.serving.micro_batch_rows == 64
    assert settings.queue.job_workers == 2
    assert settings.database.url is None
    assert settings.registry.url is None
    assert settings.metadata_url.startswith("sqlite:///")


def test_sectioned_variables_set_their_section(monkeypatch):
    monkeypatch.setenv("TABOPS_SERVING__MAX_BATCH_ROWS", "5000")
    monkeypatch.setenv("TABOPS_DATABASE__URL", "postgresql://db/tabops")
    monkeypatch.setenv("TABOPS_REGISTRY__URL", "file:///srv/models")
    settings = Settings()
    assert settings.serving.max_batch_rows == 5000
    assert settings.metadata_url == "postgresql://db/tabops"
    assert settings.registry.url == "file:///srv/models"


def test_the_flat_variables_of_earlier_releases_are_still_read(monkeypatch):
    monkeypatch.setenv("TABOPS_MAX_BATCH_ROWS", "7")
    monkeypatch.setenv("TABOPS_DATABASE_URL", "postgresql://db/old")
    monkeypatch.setenv("TABOPS_QUEUE_URL", "redis://cache/0")
    monkeypatch.setenv("TABOPS_JOB_WORKERS", "0")
    monkeypatch.setenv("TABOPS_DEFAULT_MODEL", "fraud")
    monkeypatch.setenv("TABOPS_PORT", "9000")
    settings = Settings()
    assert settings.serving.max_batch_rows == 7
    assert settings.database.url == "postgresql://db/old"
    assert settings.queue.url == "redis://cache/0"
    assert settings.queue.job_workers == 0
    assert settings.serving.default_model == "fraud"
    assert settings.serving.port == 9000


@pytest.mark.parametrize("variable", ["TABOPS_REGISTRY_URL", "TABOPS_ARTIFACTS_URL"])
def test_the_registry_url_has_a_short_name(monkeypatch, variable):
    monkeypatch.setenv(variable, "s3://models/team-a")
    assert Settings().registry.url == "s3://models/team-a"


def test_a_sectioned_variable_wins_over_its_flat_name(monkeypatch):
    monkeypatch.setenv("TABOPS_MAX_BATCH_ROWS", "7")
    monkeypatch.setenv("TABOPS_SERVING__MAX_BATCH_ROWS", "70")
    assert Settings().serving.max_batch_rows == 70


def test_flat_keyword_arguments_land_in_their_sections():
    settings = Settings(home=Path("/tmp/x"), max_batch_rows=3, job_workers=0, queue_url="redis://q")
    assert settings.serving.max_batch_rows == 3
    assert settings.queue.job_workers == 0
    assert settings.queue.url == "redis://q"


def test_invalid_values_are_refused_naming_the_field(monkeypatch):
    monkeypatch.setenv("TABOPS_SERVING__PORT", "0")
    with pytest.raises(ValidationError, match="port"):
        Settings()
    monkeypatch.delenv("TABOPS_SERVING__PORT")
    with pytest.raises(ValidationError, match="unknown_field"):
        Settings(serving={"unknown_field": 1})


@pytest.mark.parametrize("word", ["never", "off", "None", ""])
def test_job_retention_can_be_turned_off_from_the_environment(monkeypatch, word):
    monkeypatch.setenv("TABOPS_QUEUE__JOB_RETENTION_DAYS", word)
    assert Settings().queue.job_retention_days is None
    monkeypatch.delenv("TABOPS_QUEUE__JOB_RETENTION_DAYS")
    monkeypatch.setenv("TABOPS_JOB_RETENTION_DAYS", "7")
    assert Settings().queue.job_retention_days == 7
