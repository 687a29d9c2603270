"""Copying a model version from one registry to another (a bucket, a folder), checked on the way.

Every file is checked against the sha256 its manifest lists before anything is written, so a
corrupt source never reaches the target. The version keeps its number when the target has it
free, with the manifest's bytes unchanged (a signature stays valid); when the number holds
another version there, the copy is registered as the target's next number. A version the
target holds already (same content, under any number) is not copied twice.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from tabops.errors import ArtifactIntegrityError
from tabops.registry.signing import (
    SIGNATURE,
    canonical_content,
    parse_document,
    read_version_manifest,
)
from tabops.registry.store import key_parts
from tabops.registry.tags import VersionTags, check_tags
from tabops.registry.versions import (
    DEFAULT_ALIAS,
    MANIFEST,
    ModelRegistry,
    check_alias,
    check_model_name,
)

CopyStatus = Literal["copied", "renumbered", "already present"]
CopyProgress = Callable[[str, int, int | None], None]
"""Called with the stage (``reading``, ``writing``), bytes done and the total when known."""

# What registering a copy under another number rewrites: the rest identifies the version.
_RENUMBERED_KEYS = frozenset({"format", "version", "created", SIGNATURE})
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class CopyResult:
    """What copying one version did.

    ``status`` is ``copied`` (same number in the target), ``renumbered`` (the number was taken
    by another version there: ``version`` is the target's new number) or ``already present``
    (the target held the same version, as ``version``; nothing was written but tags).
    ``is_signed_for_target`` says whether the target's signing key vouches for the copy's
    manifest (None when the target has no key).
    """

    name: str
    source_version: int
    version: int
    status: CopyStatus
    size_bytes: int
    tags: tuple[str, ...]
    is_signed_for_target: bool | None

    @property
    def ref(self) -> str:
        """``name:version`` of the copy in the target."""
        return f"{self.name}:{self.version}"


def copy_version(
    source: ModelRegistry,
    target: ModelRegistry,
    name: str,
    ref: str | int | None = None,
    tags: Iterable[str] = (),
    *,
    promote: str | None = None,
    progress: CopyProgress | None = None,
) -> CopyResult:
    """Copy one version of a model, with its tags, from ``source`` into ``target``.

    The copy takes ``production`` in the target when the model has no such alias there yet
    (as a first registration does), and the target's first model becomes its default model.

    Args:
        source: the registry holding the version.
        target: the registry to copy it into.
        name: the model.
        ref: a version number, an alias or a tag of the source; None for ``production``.
        tags: tags to give the copy, besides those the version has in the source.
        promote: an alias to point at the copy in the target.
        progress: told of the bytes read and written.

    Raises:
        RegistryError: an invalid model name, tag or alias.
        ModelNotFoundError: the source has no such model.
        VersionNotFoundError: the source has no such version, alias or tag.
        ArtifactIntegrityError: the source's manifest is unreadable or names another
            version, or a file it lists is missing or fails its sha256.
    """
    check_model_name(name)
    wanted = check_tags(tags)
    if promote is not None:
        check_alias(promote)
    number = source.resolve(name, ref)
    where = f"{name}:{number}"
    raw, document = read_version_manifest(source, name, number)
    hashes = _listed_files(document, where)
    carried = VersionTags(source.store).of(name).get(number, [])
    all_tags = [*carried, *(tag for tag in wanted if tag not in carried)]

    held = target.list_versions(name)
    present = _find_same(target, name, number, held, raw, document)
    size = 0
    status: CopyStatus = "already present"
    if present is not None:
        version = present
    else:
        files = _read_checked(source, name, number, hashes, where, progress)
        size = sum(len(data) for data in files.values()) + len(raw)
        if progress is not None:
            progress("writing", 0, size)
        version, status = _publish(target, name, number, held, files, raw)
        if progress is not None:
            progress("writing", size, size)
    target_tags = VersionTags(target.store)
    final_tags = (
        target_tags.add(name, version, all_tags)
        if all_tags
        else target_tags.of(name).get(version, [])
    )
    if promote is not None:
        target.set_alias(name, promote, version)
    signed = None
    if target.signer is not None:
        stored = target.read_file(name, version, MANIFEST)
        signed = target.signer.has_signed(parse_document(stored, f"{name}:{version} {MANIFEST}"))
    return CopyResult(name, number, version, status, size, tuple(final_tags), signed)


def _listed_files(document: Mapping[str, Any], where: str) -> dict[str, str]:
    """The manifest's files and hashes, refusing names that could leave the version's folder."""
    files = document.get("files")
    if not isinstance(files, dict) or not files:
        raise ArtifactIntegrityError(f"{where}: the manifest lists no files")
    for file, digest in files.items():
        if file == MANIFEST or not _is_file_key(file):
            raise ArtifactIntegrityError(f"{where}: the manifest lists an invalid file {file!r}")
        if not isinstance(digest, str) or _SHA256.fullmatch(digest) is None:
            raise ArtifactIntegrityError(f"{where}: the manifest's sha256 of {file!r} is invalid")
    return dict(files)


def _is_file_key(file: str) -> bool:
    """Whether a listed file is a key inside its version's folder (never ``..``, never hidden)."""
    try:
        return "/".join(key_parts(file)) == file
    except ValueError:
        return False


def _identity(document: Mapping[str, Any]) -> bytes:
    """What stays the same when a version is registered under another number."""
    return canonical_content({k: v for k, v in document.items() if k not in _RENUMBERED_KEYS})


def _find_same(
    target: ModelRegistry,
    name: str,
    number: int,
    versions: list[int],
    raw: bytes,
    document: Mapping[str, Any],
) -> int | None:
    """The number under which the target holds this version already, if it does."""
    identity = _identity(document)
    # The same number first: one read answers the usual case (pushing again).
    for candidate in sorted(versions, key=lambda v: v != number):
        stored = target.read_file(name, candidate, MANIFEST)
        if stored == raw:
            return candidate
        try:
            other = json.loads(stored)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(other, dict) and _identity(other) == identity:
            return candidate
    return None


def _read_checked(
    source: ModelRegistry,
    name: str,
    number: int,
    hashes: Mapping[str, str],
    where: str,
    progress: CopyProgress | None,
) -> dict[str, bytes]:
    """Every listed file of the version, each checked against its sha256."""
    files: dict[str, bytes] = {}
    done = 0
    for file, expected in hashes.items():
        try:
            data = source.read_file(name, number, file)
        except FileNotFoundError:
            raise ArtifactIntegrityError(f"{where}: {file} is missing; nothing copied") from None
        if hashlib.sha256(data).hexdigest() != expected:
            raise ArtifactIntegrityError(
                f"{where}: {file} does not match its sha256; refusing to copy a corrupt version"
            )
        files[file] = data
        done += len(data)
        if progress is not None:
            progress("reading", done, None)
    return files


def _publish(
    target: ModelRegistry,
    name: str,
    number: int,
    held: list[int],
    files: dict[str, bytes],
    raw: bytes,
) -> tuple[int, CopyStatus]:
    """Publish under the same number when it is free there, else register the next one."""
    if number not in held:
        earlier = target.list_models()
        # The manifest last: a store that cannot publish a folder at once shows the version
        # only when every file is there.
        content = {**files, MANIFEST: raw}
        if target.store.publish(f"{name}/versions/{number}", content):
            if DEFAULT_ALIAS not in target.aliases(name):
                target.set_alias(name, DEFAULT_ALIAS, number)
            if not earlier:
                target.set_default_model(name)
            return number, "copied"
    from tabops.model.manifest import Manifest

    manifest = Manifest.from_json(raw, f"{name}:{number} {MANIFEST}")
    registered = target.register(name, files, manifest)
    return registered.version, "renumbered"
