"""The model registry: immutable versions and movable aliases over an artifact store.

Only the store adapters (``local.py``) touch storage; ``versions.py`` holds the logic, and
``open_registry`` picks the adapter from the settings' registry URL.
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


def open_artifact_store(url: str | None, default: Path) -> ArtifactStore:
    """The artifact store a registry URL names: a folder, or ``file://`` URL.

    Raises:
        RegistryError: a URL scheme no backend of this release serves.
    """
    if not url:
        return LocalArtifactStore(default)
    parsed = urlparse(url)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise RegistryError(f"registry URL {url!r} names a remote host; use a local path")
        return LocalArtifactStore(Path(unquote(parsed.path)))
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and url[1:3] in (":\\", ":/")):
        return LocalArtifactStore(Path(url).expanduser())
    raise RegistryError(
        f"no registry backend for {parsed.scheme}:// URLs in this release; "
        "use a folder or a file:// URL"
    )


def open_registry(settings: Settings) -> ModelRegistry:
    """The registry the settings name (``registry.url``, else the folder under home).

    With ``security.signing_key`` set, it signs the versions it registers and refuses to
    load one whose manifest signature is missing or wrong.
    """
    return ModelRegistry(
        open_artifact_store(settings.registry.url, settings.registry_path),
        ManifestSigner.from_secret(settings.security.signing_key),
    )
