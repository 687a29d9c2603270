"""Settings of a tabops process: typed sections read from ``TABOPS_*`` environment variables.

Each section is a nested model, set with ``TABOPS_<SECTION>__<FIELD>`` (for example
``TABOPS_SERVING__MAX_BATCH_ROWS=5000`` or ``TABOPS_REGISTRY__URL=file:///srv/models``).
The flat names of earlier releases (``TABOPS_MAX_BATCH_ROWS``, ``TABOPS_DATABASE_URL``, ...)
are still read, and still accepted as keyword arguments, below the sectioned ones.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

_PREFIX = "TABOPS_"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegistrySettings(_Section):
    """Where model versions are kept."""

    url: str | None = Field(
        default=None,
        description="A folder or file:// URL; the 'registry' folder under home when unset.",
    )


class DatabaseSettings(_Section):
    """The metadata database: job records and the online feature store."""

    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the metadata database; SQLite under home when unset.",
    )


class QueueSettings(_Section):
    """Durable jobs: where they queue and how they run."""

    url: str | None = Field(
        default=None,
        description="redis://... to queue jobs on Redis; a SQLite queue under home when unset.",
    )
    job_workers: int = Field(
        default=2, ge=0, description="Job threads inside `tabops serve`; 0 leaves jobs to workers."
    )
    job_lease_seconds: float = Field(
        default=30.0,
        gt=0,
        description="A running job whose worker has not reported for this long is re-queued.",
    )
    max_job_records: int = Field(
        default=1_000_000, ge=1, description="Most records one JSON job may hold."
    )
    max_upload_bytes: int = Field(
        default=2 * 1024**3, ge=1, description="Largest file a job upload may send."
    )


class ServingSettings(_Section):
    """The API server and its predict path."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    default_model: str | None = Field(
        default=None,
        description="Model served at POST /predict, overriding the one the registry records.",
    )
    alias_cache_seconds: float = Field(
        default=2.0, ge=0, description="How long a resolved alias is trusted before re-reading."
    )
    max_batch_rows: int = Field(default=10_000, ge=1)
    micro_batch_rows: int = Field(
        default=64,
        ge=1,
        description="Most single-row requests scored in one call; 1 turns micro-batching off.",
    )
    micro_batch_wait_ms: float = Field(
        default=1.0, ge=0, description="Longest a request waits for others to join its batch."
    )
    onnx_threads: int = Field(
        default=1, ge=1, description="onnxruntime intra-op threads per model (per worker)."
    )


# The flat setting names of earlier releases, and the section each now lives in.
LEGACY_NAMES: dict[str, tuple[str, str]] = {
    "database_url": ("database", "url"),
    "queue_url": ("queue", "url"),
    **{
        name: ("queue", name)
        for name in ("job_workers", "job_lease_seconds", "max_job_records", "max_upload_bytes")
    },
    **{name: ("serving", name) for name in ServingSettings.model_fields},
}


class _LegacyEnvironment(PydanticBaseSettingsSource):
    """``TABOPS_<FLAT_NAME>`` variables of earlier releases, as flat keys."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self.environ = environ

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """Not used: ``__call__`` reads the legacy names directly."""
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        found = {}
        for name in LEGACY_NAMES:
            value = self.environ.get(_PREFIX + name.upper())
            if value is not None:
                found[name] = value
        return found


class Settings(BaseSettings):
    """Typed settings; build one explicitly in tests, use ``get_settings()`` elsewhere."""

    model_config = SettingsConfigDict(env_prefix=_PREFIX, env_nested_delimiter="__")

    home: Path = Field(default=Path(".tabops"), description="Where registry and state live.")
    registry: RegistrySettings = Field(default_factory=RegistrySettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    queue: QueueSettings = Field(default_factory=QueueSettings)
    serving: ServingSettings = Field(default_factory=ServingSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments, then sectioned variables, then the flat names of earlier releases."""
        legacy = _LegacyEnvironment(settings_cls, os.environ)
        return init_settings, env_settings, legacy, dotenv_settings, file_secret_settings

    @model_validator(mode="before")
    @classmethod
    def _nest_legacy_names(cls, data: Any) -> Any:
        """Move flat names (``max_batch_rows=...``) into their sections, below explicit ones."""
        if not isinstance(data, dict):
            return data
        nested = {key: value for key, value in data.items() if key not in LEGACY_NAMES}
        for name, (section, field) in LEGACY_NAMES.items():
            if name not in data:
                continue
            current = nested.get(section)
            values = dict(current) if isinstance(current, Mapping) else {}
            values.setdefault(field, data[name])
            nested[section] = values
        return nested

    @property
    def registry_path(self) -> Path:
        """Directory of the local model registry (when ``registry.url`` names no other)."""
        return self.home / "registry"

    @property
    def jobs_path(self) -> Path:
        """Directory of job inputs and results."""
        return self.home / "jobs"

    @property
    def metadata_url(self) -> str:
        """The metadata database: ``database.url``, else a SQLite file under home."""
        return self.database.url or f"sqlite:///{(self.home / 'tabops.db').resolve()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings from the process environment, read once."""
    return Settings()
