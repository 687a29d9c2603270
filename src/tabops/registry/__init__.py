"""The model registry: immutable versions and movable aliases over an artifact store.

Only the store adapters (``local.py``) touch disk; ``versions.py`` holds the logic.
"""

from tabops.model.manifest import ModelVersion
from tabops.registry.local import LocalArtifactStore
from tabops.registry.store import ArtifactStore
from tabops.registry.versions import ModelRegistry, parse_model_ref

__all__ = [
    "ArtifactStore",
    "LocalArtifactStore",
    "ModelRegistry",
    "ModelVersion",
    "parse_model_ref",
]
