"""Unpacking a zip sent over the network (an MLflow model folder) without trusting it.

Every member is checked before anything is written: a relative path of plain parts (no
``..``, no absolute path, no drive, no backslash), a regular file or a folder (no symlink,
device or other special file), at most ``max_members`` of them. Files are then written
one by one under the target folder, created new (never through an existing path), and the
bytes actually unpacked are counted against ``max_bytes``: the sizes a zip declares are
not believed.
"""

from __future__ import annotations

import os
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tabops.errors import ModelImportError, Problem

MLFLOW_FILE = "MLmodel"
"""The file at the root of an MLflow model folder."""
SKOPS_SCHEMA = "schema.json"
"""The file at the root of a skops file (itself a zip)."""
MAX_MEMBERS = 1000
"""Most files and folders an archive may hold."""

_CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class ArchiveLimits:
    """How much an archive may unpack to: bytes in all, and members."""

    max_bytes: int
    max_members: int = MAX_MEMBERS


def is_model_folder_archive(path: Path) -> bool:
    """Whether a file is a zip to unpack as a model folder (rather than a skops file).

    A skops file is a zip too, with ``schema.json`` at its root and no ``MLmodel``;
    any other zip is taken for a zipped model folder.
    """
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return True  # unpacking then says what is wrong with it
    return not (SKOPS_SCHEMA in names and MLFLOW_FILE not in names)


def unpack_model_folder(archive_path: Path, target: Path, limits: ArchiveLimits) -> Path:
    """Unpack a zipped model folder under ``target``; returns the folder holding ``MLmodel``.

    ``MLmodel`` may sit at the archive's root or in its one top-level folder (what zipping
    a folder gives).

    Raises:
        ModelImportError: not a zip, an unsafe or unexpected member, beyond the limits, or
            no ``MLmodel`` where one is looked for (field ``model``).
    """
    try:
        with zipfile.ZipFile(archive_path) as archive:
            members = _checked_members(archive, limits)
            root = _model_root(members)
            target.mkdir(parents=True, exist_ok=True)
            written = 0
            for member, parts in members:
                destination = target.joinpath(*parts)
                if member.is_dir():
                    destination.mkdir(parents=True, exist_ok=True)
                    continue
                destination.parent.mkdir(parents=True, exist_ok=True)
                written = _unpack_file(archive, member, destination, written, limits.max_bytes)
    except zipfile.BadZipFile as exc:
        raise _refused(f"the model archive is not a readable zip: {exc}") from None
    except (OSError, EOFError, RuntimeError, ValueError, NotImplementedError) as exc:
        # A member the zip module cannot read back (encrypted, an unknown compression,
        # corrupt data): RuntimeError, NotImplementedError, EOFError or zlib's error.
        raise _refused(f"the model archive cannot be unpacked: {exc}") from None
    return target.joinpath(*root)


def _checked_members(
    archive: zipfile.ZipFile, limits: ArchiveLimits
) -> list[tuple[zipfile.ZipInfo, tuple[str, ...]]]:
    members = archive.infolist()
    if len(members) > limits.max_members:
        raise _refused(f"the model archive holds more than {limits.max_members} members")
    checked = []
    seen: set[tuple[str, ...]] = set()
    for member in members:
        parts = _safe_parts(member.filename)
        # The Unix file type, when the zip records one (0: none, a plain file).
        kind = stat.S_IFMT(member.external_attr >> 16)
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            what = "a symbolic link" if kind == stat.S_IFLNK else "a special file"
            raise _refused(f"the model archive member {member.filename!r} is {what}")
        if parts in seen:
            raise _refused(f"the model archive holds {member.filename!r} twice")
        seen.add(parts)
        checked.append((member, parts))
    return checked


def _safe_parts(name: str) -> tuple[str, ...]:
    """The path parts of a member name, when it is a plain relative path."""
    path = PurePosixPath(name)
    parts = tuple(part for part in path.parts if part not in ("", "."))
    is_safe = (
        bool(parts)
        and not path.is_absolute()
        and "\\" not in name
        and "\x00" not in name
        and ":" not in parts[0]
        and ".." not in parts
    )
    if not is_safe:
        raise _refused(f"the model archive member {name!r} is not a safe relative path")
    return parts


def _model_root(members: list[tuple[zipfile.ZipInfo, tuple[str, ...]]]) -> tuple[str, ...]:
    files = {parts for member, parts in members if not member.is_dir()}
    if (MLFLOW_FILE,) in files:
        return ()
    tops = {parts[0] for parts in files}
    if len(tops) == 1:
        (top,) = tops
        if (top, MLFLOW_FILE) in files:
            return (top,)
    raise _refused(
        "the model archive holds no MLflow model: zip the model folder (with its MLmodel "
        "file at the root or in one top folder), or send the model file itself"
    )


def _unpack_file(
    archive: zipfile.ZipFile, member: zipfile.ZipInfo, destination: Path, written: int, limit: int
) -> int:
    """Write one member as a new file, counting its bytes; returns the running total."""
    # O_EXCL and O_NOFOLLOW: never write through a file or link already there.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    handle = os.open(destination, flags, 0o600)
    with archive.open(member) as source, os.fdopen(handle, "wb") as sink:
        while chunk := source.read(_CHUNK_BYTES):
            written += len(chunk)
            if written > limit:
                raise _refused(f"the model archive unpacks to more than {limit} bytes")
            sink.write(chunk)
    return written


def _refused(message: str) -> ModelImportError:
    return ModelImportError(message, [Problem("model", message)])
