"""The model registry: immutable versions and movable aliases over an artifact store.

Only the store adapters (``local.py``, ``s3.py`` with its ``cache.py``) touch storage;
``versions.py`` holds the logic, and ``open_registry`` picks the adapter from the settings'
registry URL. ``s3.py`` (and boto3) is imported only when an ``s3://`` URL is used.
"""

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from tabops.config import Settings
from tabops.errors import RegistryError
from tabops.registry.local import LocalArtifactStore
from tabops.registry.signing import ManifestSigner
from tabops.registry.store import ArtifactStore
from tabops.registry.versions import ModelRegistry, parse_model_ref

if TYPE_CHECKING:
    from tabops.model.manifest import ModelVersion

__all__ = [
    "ArtifactStore",
    "LocalArtifactStore",
    "ManifestSigner",
    "ModelRegistry",
    "ModelVersion",
    "open_artifact_store",
    "open_registry",
    "parse_model_ref",
]


def __getattr__(name: str) -> object:
    # ModelVersion brings the manifest's feature spec and pandas; listing models needs neither.
    if name == "ModelVersion":
        from tabops.model.manifest import ModelVersion

        return ModelVersion
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_artifact_store(url: str | None, default: Path, cache: Path | None = None) -> ArtifactStore:
    """The artifact store a registry URL names: a folder, a ``file://`` or ``s3://`` URL.

    Args:
        url: the registry URL; None or empty for ``default``.
        default: the folder of the local registry when ``url`` names none.
        cache: where remote stores keep their cache (each in ``<bucket>/<prefix>`` below
            it); None for no cache.

    Raises:
        RegistryError: a URL scheme no backend of this release serves, or an invalid
            ``s3://`` URL.
        MissingExtraError: an ``s3://`` URL without the ``s3`` extra installed.
    """
    if not url:
        return LocalArtifactStore(default)
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        from tabops.registry.s3 import S3ArtifactStore

        return S3ArtifactStore.from_url(url, cache)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise RegistryError(f"registry URL {url!r} names a remote host; use a local path")
        return LocalArtifactStore(Path(unquote(parsed.path)))
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and url[1:3] in (":\\", ":/")):
        return LocalArtifactStore(Path(url).expanduser())
    raise RegistryError(
        f"no registry backend for {parsed.scheme}:// URLs in this release; "
        "use a folder, a file:// or an s3:// URL"
    )


def open_registry(settings: Settings) -> ModelRegistry:
    """The registry the settings name (``registry.url``, else the folder under home).

    With ``security.signing_key`` set, it signs the versions it registers and refuses to
    load one whose manifest signature is missing or wrong. A remote store keeps its cache
    under ``home/cache/registry``.
    """
    cache = settings.home / "cache" / "registry"
    return ModelRegistry(
        open_artifact_store(settings.registry.url, settings.registry_path, cache),
        ManifestSigner.from_secret(settings.security.signing_key),
    )
