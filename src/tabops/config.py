"""Settings of a tabops process, read from ``TABOPS_*`` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Typed settings; build one explicitly in tests, use ``get_settings()`` elsewhere."""

    model_config = SettingsConfigDict(env_prefix="TABOPS_", env_nested_delimiter="__")

    home: Path = Field(default=Path(".tabops"), description="Where registry and state live.")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    default_model: str | None = Field(
        default=None, description="Model served at POST /predict; the only model when unset."
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
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the metadata database; SQLite under home when unset.",
    )
    queue_url: str | None = Field(
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

    @property
    def registry_path(self) -> Path:
        """Directory of the local model registry."""
        return self.home / "registry"

    @property
    def jobs_path(self) -> Path:
        """Directory of job inputs and results."""
        return self.home / "jobs"

    @property
    def metadata_url(self) -> str:
        """The metadata database: ``database_url``, else a SQLite file under home."""
        return self.database_url or f"sqlite:///{(self.home / 'tabops.db').resolve()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings from the process environment, read once."""
    return Settings()
