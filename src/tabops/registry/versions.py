"""Model versions (immutable, numbered) and aliases (movable, with history for rollback)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tabops.errors import (
    ArtifactIntegrityError,
    ModelNotFoundError,
    RegistryError,
    VersionNotFoundError,
)
from tabops.registry.store import ArtifactStore

if TYPE_CHECKING:
    from tabops.model.manifest import Manifest, ModelVersion

MANIFEST = "manifest.json"
DEFAULT_ALIAS = "production"
# Beside the models' folders; the dot keeps it apart from every model name.
DEFAULT_MODEL_RECORD = "default-model.json"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_ALIAS = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_NUMBER = re.compile(r"^[0-9]{1,9}$")
_MAX_PUBLISH_ATTEMPTS = 20


def is_version_number(ref: str | int) -> bool:
    """Whether a reference is a version number (ASCII digits) rather than an alias."""
    return isinstance(ref, int) or bool(_NUMBER.match(ref))


def check_alias(alias: str) -> str:
    """The alias, when it is one an alias may be named.

    Raises:
        RegistryError: it breaks the naming rule (which the message states).
    """
    if not _ALIAS.fullmatch(alias):
        raise RegistryError(
            f"invalid alias {alias!r}: use a-z, 0-9, '-' and '_', starting with a letter, "
            "at most 32 characters"
        )
    return alias


def parse_model_ref(text: str) -> tuple[str, str | None]:
    """Split ``name``, ``name@alias`` or ``name:version`` into the name and the reference."""
    for separator in ("@", ":"):
        if separator in text:
            name, ref = text.split(separator, 1)
            return name, ref
    return text, None


@dataclass(frozen=True)
class VersionSummary:
    """What a listing shows of a version: when it was made and its test metrics."""

    name: str
    version: int
    created: str | None
    metrics: dict[str, float]


def _json(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, indent=2, sort_keys=False, default=str).encode() + b"\n"


class ModelRegistry:
    """Versions and aliases of every model, kept in an ``ArtifactStore``.

    Layout: ``<name>/versions/<n>/<files>``, ``<name>/aliases/<alias>.json`` and
    ``default-model.json`` (the model ``POST /predict`` answers with). A version is published
    all at once, so a reader never sees a half-written one.
    """

    def __init__(self, store: ArtifactStore) -> None:
        self.store = store

    def list_models(self) -> list[str]:
        """Names of the models that have at least one version."""
        return [name for name in self.store.list_children("") if self.list_versions(name)]

    def list_versions(self, name: str) -> list[int]:
        """Version numbers of a model, ascending; [] for an unknown model."""
        if not _NAME.match(name):
            return []
        children = self.store.list_children(f"{name}/versions")
        # A version exists once its manifest does: the manifest is written last, so a
        # store without atomic publication never shows a version with files missing.
        return sorted(
            int(child)
            for child in children
            if _NUMBER.match(child) and self.store.exists(f"{name}/versions/{child}/{MANIFEST}")
        )

    def register(self, name: str, files: Mapping[str, bytes], manifest: Manifest) -> ModelVersion:
        """Publish a new version: the next free number, with file hashes in its manifest.

        The first version of a model also becomes its ``production`` version, and the first
        model of the registry its default model.
        """
        # The manifest's model (its feature spec) brings pandas: only for the commands that
        # need it, not for listing models.
        from tabops.model.manifest import FORMAT, Manifest, ModelVersion

        if not _NAME.match(name):
            raise RegistryError(f"invalid model name {name!r}: use a-z, 0-9, '-' and '_'")
        earlier = None if self.store.exists(DEFAULT_MODEL_RECORD) else self.list_models()
        hashes = {file: hashlib.sha256(data).hexdigest() for file, data in files.items()}
        for _attempt in range(_MAX_PUBLISH_ATTEMPTS):
            # Numbers of half-written versions are taken too: never publish into one.
            taken = [
                int(c) for c in self.store.list_children(f"{name}/versions") if _NUMBER.match(c)
            ]
            version = max(taken, default=0) + 1
            document = Manifest.model_validate(
                {
                    **manifest.document(),
                    "format": FORMAT,
                    "name": name,
                    "version": version,
                    "created": datetime.now(UTC).isoformat(),
                    "files": hashes,
                }
            )
            content = {**files, MANIFEST: document.to_json()}  # the manifest last
            if self.store.publish(f"{name}/versions/{version}", content):
                if DEFAULT_ALIAS not in self.aliases(name):
                    self.set_alias(name, DEFAULT_ALIAS, version)
                if earlier is not None:
                    self._record_first_default(name, earlier)
                return ModelVersion(name=name, version=version, manifest=document)
        raise RegistryError(f"could not allocate a version number for {name!r}; retry")

    def get_version(self, name: str, ref: str | int | None = None) -> ModelVersion:
        """A version by number, by alias, or (``ref`` None) the production one."""
        from tabops.model.manifest import Manifest, ModelVersion

        version = self.resolve(name, ref)
        key = f"{name}/versions/{version}/{MANIFEST}"
        manifest = Manifest.from_json(self.store.read_bytes(key), f"{name}:{version} {MANIFEST}")
        return ModelVersion(name=name, version=version, manifest=manifest)

    def summarize_version(self, name: str, version: int) -> VersionSummary:
        """A version's creation time and test metrics, read from its manifest's JSON.

        For listings: the typed ``Manifest`` (``get_version``) imports pandas for its feature
        spec, which costs a listing more than reading every manifest does.

        Raises:
            ArtifactIntegrityError: the manifest is not a JSON object.
        """
        where = f"{name}:{version} {MANIFEST}"
        try:
            document = json.loads(self.store.read_bytes(f"{name}/versions/{version}/{MANIFEST}"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ArtifactIntegrityError(f"{where} is not valid JSON: {exc}") from exc
        if not isinstance(document, dict):
            raise ArtifactIntegrityError(f"{where} does not hold a JSON object")
        created = document.get("created")
        metrics = document.get("metrics")
        return VersionSummary(
            name=name,
            version=version,
            created=created if isinstance(created, str) else None,
            metrics={
                metric: float(value)
                for metric, value in (metrics if isinstance(metrics, dict) else {}).items()
                if isinstance(value, int | float) and not isinstance(value, bool)
            },
        )

    def read_file(self, name: str, version: int, file: str) -> bytes:
        """The bytes of one file of a version."""
        return self.store.read_bytes(f"{name}/versions/{version}/{file}")

    def resolve(self, name: str, ref: str | int | None = None) -> int:
        """The version number a reference points to.

        Raises:
            ModelNotFoundError: no model of that name.
            VersionNotFoundError: no such version or alias.
        """
        versions = self.list_versions(name)
        if not versions:
            raise ModelNotFoundError(f"model {name!r} not found")
        if ref is None:
            ref = DEFAULT_ALIAS
        if is_version_number(ref):
            if int(ref) not in versions:
                raise VersionNotFoundError(
                    f"model {name!r} has no version {ref}; versions are {versions}"
                )
            return int(ref)
        aliases = self.aliases(name)
        if ref not in aliases:
            raise VersionNotFoundError(
                f"model {name!r} has no alias {ref!r}; aliases are {sorted(aliases)}"
            )
        return aliases[ref]

    def aliases(self, name: str) -> dict[str, int]:
        """Every alias of a model and the version it points to."""
        if not _NAME.match(name):
            return {}
        result = {}
        for child in self.store.list_children(f"{name}/aliases"):
            if child.endswith(".json"):
                result[child.removesuffix(".json")] = self._read_alias(name, child)["version"]
        return result

    def _read_alias(self, name: str, file: str) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.store.read_bytes(f"{name}/aliases/{file}"))
        return document

    def set_alias(self, name: str, alias: str, version: int) -> int | None:
        """Point an alias at a version, remembering the old target; returns the old target."""
        check_alias(alias)
        if version not in self.list_versions(name):
            self.resolve(name, version)  # raises the right not-found error
        key = f"{name}/aliases/{alias}.json"
        history: list[int] = []
        previous = None
        if self.store.exists(key):
            document = self._read_alias(name, f"{alias}.json")
            previous = int(document["version"])
            history = [*document.get("history", []), previous]
        if previous == version:
            return previous
        record = {
            "alias": alias,
            "version": version,
            "history": history,
            "updated": datetime.now(UTC).isoformat(),
        }
        self.store.write_bytes(key, _json(record))
        return previous

    def rollback(self, name: str, alias: str = DEFAULT_ALIAS) -> tuple[int, int]:
        """Point an alias back at the version it pointed to before; returns (from, to).

        Raises:
            RegistryError: the alias has no earlier version to go back to.
        """
        self.resolve(name, alias)
        document = self._read_alias(name, f"{alias}.json")
        history = [int(v) for v in document.get("history", [])]
        if not history:
            raise RegistryError(f"{name}@{alias} has no earlier version to roll back to")
        current, target = int(document["version"]), history[-1]
        record = {
            "alias": alias,
            "version": target,
            "history": history[:-1],
            "updated": datetime.now(UTC).isoformat(),
        }
        self.store.write_bytes(f"{name}/aliases/{alias}.json", _json(record))
        return current, target

    def default_model(self) -> str | None:
        """The model ``POST /predict`` answers with: the recorded one, else the only model.

        Registries written before the record existed have none: with one model that model
        is the default; with several there is none, rather than a silent pick.
        """
        recorded = self._read_default()
        if recorded is not None:
            return recorded
        models = self.list_models()
        return models[0] if len(models) == 1 else None

    def set_default_model(self, name: str) -> str | None:
        """Record ``name`` as the default model; returns the default it replaces.

        Raises:
            ModelNotFoundError: no model of that name is registered.
        """
        if not self.list_versions(name):
            models = ", ".join(self.list_models()) or "none yet"
            raise ModelNotFoundError(f"model {name!r} not found; registered models: {models}")
        previous = self.default_model()
        if self._read_default() != name:
            self._write_default(name, previous)
        return previous

    def _record_first_default(self, name: str, earlier: list[str]) -> None:
        # The first model ever registered becomes the default. A registry from before the
        # record keeps its only model as the default; with several, the choice is the user's.
        if len(earlier) > 1 or self.store.exists(DEFAULT_MODEL_RECORD):
            return
        self._write_default(earlier[0] if earlier else name, None)

    def _read_default(self) -> str | None:
        try:
            document = json.loads(self.store.read_bytes(DEFAULT_MODEL_RECORD))
            return str(document["model"])
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            raise RegistryError(
                f"the registry's {DEFAULT_MODEL_RECORD} is unreadable ({exc}); "
                "record the default again with 'tabops models default NAME'"
            ) from exc

    def _write_default(self, name: str, previous: str | None) -> None:
        record = {"model": name, "previous": previous, "updated": datetime.now(UTC).isoformat()}
        self.store.write_bytes(DEFAULT_MODEL_RECORD, _json(record))
