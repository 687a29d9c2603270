"""Model versions (immutable, numbered) and aliases (movable, with history for rollback)."""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from tabops.errors import (
    ArtifactIntegrityError,
    ModelNotFoundError,
    Problem,
    RegistryError,
    VersionNotFoundError,
)
from tabops.names import ALIAS_RULE, MODEL_NAME_RULE, is_alias, is_model_name
from tabops.registry.signing import SIGNATURE, ManifestSigner, parse_document
from tabops.registry.store import ArtifactStore
from tabops.registry.tags import VersionTags, is_tag

if TYPE_CHECKING:
    from tabops.model.manifest import Manifest, ModelVersion

MANIFEST = "manifest.json"
DEFAULT_ALIAS = "production"
# Beside the models' folders; the dot keeps it apart from every model name.
DEFAULT_MODEL_RECORD = "default-model.json"
_NUMBER = re.compile(r"[0-9]{1,9}")
_VERSION_FILE = re.compile(r"[^/]+/versions/[0-9]{1,9}/(.+)")
_MAX_PUBLISH_ATTEMPTS = 20
# Every lost compare-and-set means another writer's change went in, so the registry as a
# whole moves on; this bounds how long one writer may keep losing.
_MAX_RECORD_ATTEMPTS = 200
_RECORD_BACKOFF_SECONDS = 0.02
_NO_MODEL = Problem("name", "no model of that name is registered")

_T = TypeVar("_T")
_Record = dict[str, Any]


def is_immutable_key(key: str) -> bool:
    """Whether a registry key never changes once written: a version's file, not its manifest.

    A manifest may be rewritten (re-signed); the sha256 it lists pins every other file.
    """
    match = _VERSION_FILE.fullmatch(key)
    return match is not None and match.group(1) != MANIFEST


def is_version_number(ref: str | int) -> bool:
    """Whether a reference is a version number (ASCII digits) rather than an alias."""
    return isinstance(ref, int) or _NUMBER.fullmatch(ref) is not None


def check_alias(alias: str) -> str:
    """The alias, when it is one an alias may be named.

    Raises:
        RegistryError: it breaks the naming rule (which the message states).
    """
    if not is_alias(alias):
        raise RegistryError(
            f"invalid alias {alias!r}: {ALIAS_RULE}", [Problem("alias", ALIAS_RULE)]
        )
    return alias


def check_model_name(name: str) -> str:
    """The name, when a model may be named so.

    Raises:
        RegistryError: it breaks the naming rule (which the message states).
    """
    if not is_model_name(name):
        raise RegistryError(
            f"invalid model name {name!r}: {MODEL_NAME_RULE}", [Problem("name", MODEL_NAME_RULE)]
        )
    return name


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
    all at once, so a reader never sees a half-written one. With a ``signer``, every version
    registered is signed, and ``get_version(..., verify_signature=True)`` refuses a version
    whose manifest signature is missing or wrong.
    """

    def __init__(self, store: ArtifactStore, signer: ManifestSigner | None = None) -> None:
        self.store = store
        self.signer = signer

    def list_models(self) -> list[str]:
        """Names of the models that have at least one version."""
        return [name for name in self.store.list_children("") if self.list_versions(name)]

    def list_versions(self, name: str) -> list[int]:
        """Version numbers of a model, ascending; [] for an unknown model."""
        if not is_model_name(name):
            return []
        # A version exists once its manifest does: the manifest is written last, so a
        # store without atomic publication never shows a version with files missing.
        children = self.store.list_children_holding(f"{name}/versions", MANIFEST)
        return sorted(int(child) for child in children if _NUMBER.fullmatch(child))

    def register(
        self,
        name: str,
        files: Mapping[str, bytes],
        manifest: Manifest,
        *,
        first_alias: str | None = DEFAULT_ALIAS,
    ) -> ModelVersion:
        """Publish a new version: the next free number, with file hashes in its manifest.

        The new version takes ``first_alias`` when the model has no alias of that name yet
        (so the first version becomes ``production``); with None it moves no alias. The
        first model of the registry becomes its default model.

        Raises:
            RegistryError: an invalid model name or alias, or no free version number.
        """
        # The manifest's model (its feature spec) brings pandas: only for the commands that
        # need it, not for listing models.
        from tabops.model.manifest import FORMAT, Manifest, ModelVersion

        check_model_name(name)
        if first_alias is not None:
            check_alias(first_alias)
        earlier = None if self.store.exists(DEFAULT_MODEL_RECORD) else self.list_models()
        hashes = {file: hashlib.sha256(data).hexdigest() for file, data in files.items()}
        for _attempt in range(_MAX_PUBLISH_ATTEMPTS):
            # Numbers of half-written versions are taken too: never publish into one.
            taken = [
                int(c) for c in self.store.list_children(f"{name}/versions") if _NUMBER.fullmatch(c)
            ]
            version = max(taken, default=0) + 1
            document = Manifest.model_validate(
                {
                    # A signature copied from elsewhere vouches for nothing here.
                    **{k: v for k, v in manifest.document().items() if k != SIGNATURE},
                    "format": FORMAT,
                    "name": name,
                    "version": version,
                    "created": datetime.now(UTC).isoformat(),
                    "files": hashes,
                }
            )
            stored = document.to_json()
            if self.signer is not None:
                stored = self.signer.sign(parse_document(stored, MANIFEST))
                document = Manifest.from_json(stored)
            content = {**files, MANIFEST: stored}  # the manifest last
            if self.store.publish(f"{name}/versions/{version}", content):
                if first_alias is not None:
                    self._create_alias(name, first_alias, version)
                if earlier is not None:
                    self._record_first_default(name, earlier)
                return ModelVersion(name=name, version=version, manifest=document)
        raise RegistryError(f"could not allocate a version number for {name!r}; retry")

    def get_version(
        self, name: str, ref: str | int | None = None, *, verify_signature: bool = False
    ) -> ModelVersion:
        """A version by number, by alias, or (``ref`` None) the production one.

        Args:
            name: the model.
            ref: a version number or an alias; None for ``production``.
            verify_signature: refuse a manifest whose signature is missing or wrong, when
                the registry has a signing key (nothing is checked without one).

        Raises:
            ModelNotFoundError: no such model.
            VersionNotFoundError: no such version or alias.
            ArtifactIntegrityError: the manifest is unreadable, or its signature fails.
        """
        from tabops.model.manifest import Manifest, ModelVersion

        version = self.resolve(name, ref)
        where = f"{name}:{version} {MANIFEST}"
        raw = self.store.read_bytes(f"{name}/versions/{version}/{MANIFEST}")
        manifest = Manifest.from_json(raw, where)
        if verify_signature and self.signer is not None:
            self.signer.check(parse_document(raw, where), name, version)
        return ModelVersion(name=name, version=version, manifest=manifest)

    def summarize_version(self, name: str, version: int) -> VersionSummary:
        """A version's creation time and test metrics, read from its manifest's JSON.

        For listings: the typed ``Manifest`` (``get_version``) imports pandas for its feature
        spec, which costs a listing more than reading every manifest does.

        Raises:
            ArtifactIntegrityError: the manifest is not a JSON object.
        """
        self._check_known_name(name)
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
        """The bytes of one file of a version.

        Raises:
            ModelNotFoundError: ``name`` is not a valid model name.
        """
        self._check_known_name(name)
        return self.store.read_bytes(f"{name}/versions/{version}/{file}")

    def replace_manifest(self, name: str, version: int, data: bytes) -> None:
        """Rewrite an existing version's manifest in one atomic write (to re-sign it)."""
        self.resolve(name, version)  # raises the not-found errors
        self.store.write_bytes(f"{name}/versions/{version}/{MANIFEST}", data)

    def resolve(self, name: str, ref: str | int | None = None) -> int:
        """The version number a reference points to.

        Raises:
            ModelNotFoundError: no model of that name.
            VersionNotFoundError: no such version, alias or tag.
        """
        versions = self.list_versions(name)
        if not versions:
            raise ModelNotFoundError(f"model {name!r} not found", [_NO_MODEL])
        if ref is None:
            ref = DEFAULT_ALIAS
        if is_version_number(ref):
            if int(ref) not in versions:
                raise VersionNotFoundError(
                    f"model {name!r} has no version {ref}; versions are {versions}",
                    [Problem("version", f"{name!r} has no version {ref}")],
                )
            return int(ref)
        aliases = self.aliases(name)
        if ref in aliases:
            return aliases[ref]
        # An alias wins over a tag of the same name; a tag names its newest version.
        tagged = VersionTags(self.store).find(name, str(ref)) if is_tag(str(ref)) else None
        if tagged is not None and tagged in versions:
            return tagged
        raise VersionNotFoundError(
            f"model {name!r} has no alias or tag {ref!r}; aliases are {sorted(aliases)}",
            [Problem("version", f"{name!r} has no version, alias or tag {ref!r}")],
        )

    def aliases(self, name: str) -> dict[str, int]:
        """Every alias of a model and the version it points to."""
        if not is_model_name(name):
            return {}
        result = {}
        for child in self.store.list_children(f"{name}/aliases"):
            if child.endswith(".json") and is_alias(child.removesuffix(".json")):
                result[child.removesuffix(".json")] = self._read_alias(name, child)["version"]
        return result

    def alias_history(self, name: str, alias: str) -> list[int]:
        """The versions an alias pointed to before, oldest first: ``rollback`` goes to the last.

        Raises:
            ModelNotFoundError: no model of that name.
            VersionNotFoundError: the model has no such alias.
        """
        check_alias(alias)
        self._check_known_name(name)
        try:
            record = self._read_alias(name, f"{alias}.json")
        except FileNotFoundError:
            if not self.list_versions(name):
                raise ModelNotFoundError(f"model {name!r} not found", [_NO_MODEL]) from None
            raise VersionNotFoundError(
                f"model {name!r} has no alias {alias!r}",
                [Problem("alias", f"{name!r} has no alias {alias!r}")],
            ) from None
        return [int(v) for v in record.get("history", [])]

    @staticmethod
    def _check_known_name(name: str) -> None:
        # An invalid name can name no model: answered as not found, never used as a path.
        if not is_model_name(name):
            raise ModelNotFoundError(f"model {name!r} not found", [_NO_MODEL])

    def _read_alias(self, name: str, file: str) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.store.read_bytes(f"{name}/aliases/{file}"))
        return document

    def set_alias(self, name: str, alias: str, version: int) -> int | None:
        """Point an alias at a version, remembering the old target; returns the old target.

        A compare-and-set of the alias record: of two moves at once, both go in, one after
        the other, and the history holds both.
        """
        check_alias(alias)
        if version not in self.list_versions(name):
            self.resolve(name, version)  # raises the right not-found error

        def move(current: _Record | None) -> tuple[_Record | None, int | None]:
            if current is None:
                return _alias_record(alias, version, []), None
            previous = int(current["version"])
            if previous == version:
                return None, previous
            history = [*current.get("history", []), previous]
            return _alias_record(alias, version, history), previous

        return self._change_record(f"{name}/aliases/{alias}.json", move)

    def _create_alias(self, name: str, alias: str, version: int) -> None:
        """Point a new alias at a version; an alias that exists already is left as it is."""
        record = _json(_alias_record(alias, version, []))
        self.store.write_if(f"{name}/aliases/{alias}.json", record, None)

    def rollback(self, name: str, alias: str = DEFAULT_ALIAS) -> tuple[int, int]:
        """Point an alias back at the version it pointed to before; returns (from, to).

        Raises:
            RegistryError: the alias has no earlier version to go back to.
        """
        check_alias(alias)
        self.resolve(name, alias)

        def back(current: _Record | None) -> tuple[_Record | None, tuple[int, int]]:
            history = [int(v) for v in (current or {}).get("history", [])]
            if current is None or not history:
                raise RegistryError(f"{name}@{alias} has no earlier version to roll back to")
            record = _alias_record(alias, history[-1], history[:-1])
            return record, (int(current["version"]), history[-1])

        return self._change_record(f"{name}/aliases/{alias}.json", back)

    def _change_record(
        self,
        key: str,
        change: Callable[[_Record | None], tuple[_Record | None, _T]],
        *,
        replaces_unreadable: bool = False,
    ) -> _T:
        """Apply ``change`` to a JSON record by compare-and-set, again while others win.

        ``change`` gets the current document (None when there is none; ``{}`` for an
        unreadable one when ``replaces_unreadable``) and returns the new one (None: write
        nothing) and the result to return.

        Raises:
            RegistryError: the record is unreadable, or kept changing under other writers.
        """
        for attempt in range(_MAX_RECORD_ATTEMPTS):
            current: _Record | None
            try:
                raw, tag = self.store.read_versioned(key)
            except FileNotFoundError:
                current, tag = None, None
            else:
                current = _parse_record(raw)
                if current is None:
                    if not replaces_unreadable:
                        raise RegistryError(f"the registry's {key} is not a JSON object")
                    current = {}
            record, result = change(current)
            if record is None or self.store.write_if(key, _json(record), tag):
                return result
            # Jitter, so that writers who lost together do not collide again in step.
            time.sleep(random.uniform(0, _RECORD_BACKOFF_SECONDS * min(attempt + 1, 10)))
        raise RegistryError(f"{key} kept changing under other writers; retry")

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

        def choose(current: _Record | None) -> tuple[_Record | None, str | None]:
            recorded = current.get("model") if isinstance(current, dict) else None
            if isinstance(recorded, str):
                return (None if recorded == name else _default_record(name, recorded)), recorded
            # No record (or an unreadable one, which this replaces): the inferred default.
            models = self.list_models()
            previous = models[0] if len(models) == 1 else None
            return _default_record(name, previous), previous

        return self._change_record(DEFAULT_MODEL_RECORD, choose, replaces_unreadable=True)

    def _record_first_default(self, name: str, earlier: list[str]) -> None:
        # The first model ever registered becomes the default. A registry from before the
        # record keeps its only model as the default; with several, the choice is the user's.
        if len(earlier) > 1:
            return
        record = _default_record(earlier[0] if earlier else name, None)
        self.store.write_if(DEFAULT_MODEL_RECORD, _json(record), None)

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


def _parse_record(raw: bytes) -> _Record | None:
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return document if isinstance(document, dict) else None


def _alias_record(alias: str, version: int, history: list[int]) -> _Record:
    return {
        "alias": alias,
        "version": version,
        "history": history,
        "updated": datetime.now(UTC).isoformat(),
    }


def _default_record(name: str, previous: str | None) -> _Record:
    return {"model": name, "previous": previous, "updated": datetime.now(UTC).isoformat()}
