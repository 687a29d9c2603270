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
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

_PREFIX = "TABOPS_"


def _keep_forever(value: Any) -> Any:
    """None for a retention of ``never``, ``off`` or ``none``: keep everything.

    An environment variable cannot be None, so words say it.
    """
    if isinstance(value, str) and value.strip().lower() in ("never", "off", "none", ""):
        return None
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegistrySettings(_Section):
    """Where model versions are kept."""

    url: str | None = Field(
        default=None,
        description="A folder, file:// or s3://bucket/prefix URL (the AWS_* variables or "
        "profile give endpoint, region and credentials); the 'registry' folder under home "
        "when unset.",
    )


class DatabaseSettings(_Section):
    """The metadata database: job records and the online feature store."""

    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the metadata database; SQLite under home when unset.",
    )
    busy_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="How long a SQLite write waits for another writer's lock before the "
        "request is answered 503 database_busy.",
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
        default=100_000, ge=1, description="Most records one JSON job may hold."
    )
    max_upload_bytes: int = Field(
        default=2 * 1024**3, ge=1, description="Largest file a job upload may send."
    )
    job_retention_days: float | None = Field(
        default=30.0,
        gt=0,
        description="Finished jobs and their files are deleted this long after they end; "
        "'never' (or 'off') keeps them.",
    )

    _never_expires = field_validator("job_retention_days", mode="before")(_keep_forever)


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


def _split_list(value: Any, separator: str) -> Any:
    """A list setting given as one string (``a:b`` paths, ``x,y`` origins), split."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(separator) if part.strip()]
    return value


class SecuritySettings(_Section):
    """Who may call the API, and how much one request may cost."""

    auth: Literal["on", "off"] = Field(
        default="on",
        description="'off' lets every caller do everything (TABOPS_AUTH=off); with 'on', "
        "callers need an API key once one exists.",
    )
    insecure: bool = Field(
        default=False,
        description="Serve anonymous callers on a non-loopback address while no key exists.",
    )
    project_roots: list[Path] = Field(
        default_factory=list,
        description="Folders whose projects and tables POST /v1/train may read "
        f"({os.pathsep!r}-separated in TABOPS_PROJECT_ROOTS); none: training over the API "
        "is refused.",
    )
    max_body_bytes: int = Field(
        default=10 * 1024**2, ge=1, description="Largest JSON request body, refused while read."
    )
    max_json_depth: int = Field(
        default=32, ge=2, description="Deepest nesting of arrays and objects in a JSON body."
    )
    request_timeout_seconds: float = Field(
        default=60.0, gt=0, description="Longest a request may take before it is answered 503."
    )
    rate_limit_per_second: float | None = Field(
        default=None,
        gt=0,
        description="Requests per second per API key (a key's own limit wins); unset: none.",
    )
    rate_limit_burst: int | None = Field(
        default=None, ge=1, description="Requests a key may send at once; twice the rate if unset."
    )
    rate_limit_url: str | None = Field(
        default=None,
        description="redis://... to share rate limits between processes and hosts; "
        "counted in each process when unset.",
    )
    signing_key: SecretStr | None = Field(
        default=None,
        description="Secret that signs every registered manifest (HMAC-SHA256); versions "
        "whose signature fails are refused.",
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Origins a browser may call the API from (comma-separated); none: CORS off.",
    )
    allow_trust_pickle: bool = Field(
        default=False,
        description="Let an admin key import a model with trust_pickle=true over the API: the "
        "server then unpickles a file from the network, running any code it holds. Off: "
        "only files whose pickle imports nothing outside the allow-list are imported.",
    )
    max_concurrent_imports: int = Field(
        default=2,
        ge=1,
        description="Model imports over the API run at once at most (each loads the file in "
        "a child process); more are answered 503 imports_busy with Retry-After.",
    )

    @field_validator("project_roots", mode="before")
    @classmethod
    def _split_roots(cls, value: Any) -> Any:
        return _split_list(value, os.pathsep)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        return _split_list(value, ",")


class MonitoringSettings(_Section):
    """Watching served models: the prediction log, drift checks and alerts."""

    enabled: bool = Field(
        default=True, description="Log every served prediction under home/predictions."
    )
    sample_rate: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description="Share of prediction groups (a request's or a job piece's) that are logged.",
    )
    retention_days: float | None = Field(
        default=30.0,
        gt=0,
        description="Days of the prediction log kept; 'never' (or 'off') keeps every day.",
    )
    flush_seconds: float = Field(
        default=1.0,
        gt=0,
        description="How often logged predictions are written to disk (and become findable).",
    )
    buffer_rows: int = Field(
        default=100_000,
        ge=1,
        description="Most predictions waiting to be written; past it they are dropped and counted.",
    )
    check_interval_seconds: float = Field(
        default=60.0, gt=0, description="How often drift and alert rules are evaluated."
    )
    webhook_url: str | None = Field(
        default=None, description="Where alerts are posted (JSON); none: alerts are not sent."
    )
    webhook_secret: SecretStr | None = Field(
        default=None, description="Secret that signs each webhook body (HMAC-SHA256)."
    )
    psi_warn: float = Field(
        default=0.1, ge=0, description="Population stability index of a feature that warns."
    )
    psi_alert: float = Field(
        default=0.2, ge=0, description="Population stability index of a feature that alerts."
    )

    _never_expires = field_validator("retention_days", mode="before")(_keep_forever)


# The flat setting names of earlier releases, and the section each now lives in.
LEGACY_NAMES: dict[str, tuple[str, str]] = {
    "database_url": ("database", "url"),
    "queue_url": ("queue", "url"),
    # TABOPS_REGISTRY_URL=s3://bucket/prefix, and the name the design documents used.
    "registry_url": ("registry", "url"),
    "artifacts_url": ("registry", "url"),
    **{
        name: ("queue", name)
        for name in ("job_workers", "job_lease_seconds", "max_job_records", "max_upload_bytes")
    },
    **{name: ("serving", name) for name in ServingSettings.model_fields},
    "job_retention_days": ("queue", "job_retention_days"),
    # Short names of the security settings (TABOPS_AUTH, TABOPS_PROJECT_ROOTS, ...).
    **{name: ("security", name) for name in SecuritySettings.model_fields},
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
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)

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
