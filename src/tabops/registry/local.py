"""Artifact store on a local directory: temp files and renames make every write atomic."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from tabops import atomic

_STAGING = ".staging"
_STORE = "model registry"
# A registration takes seconds; staging left this long belongs to a process that died.
STALE_STAGING_SECONDS = 3600.0


def _key_parts(key: str) -> list[str]:
    """The path parts of a key; refuses keys that could leave the root or hide a file."""
    parts = [part for part in key.split("/") if part]
    if not parts or any(part in (".", "..") or part.startswith(".") for part in parts):
        raise ValueError(f"invalid artifact key {key!r}")
    return parts


def _remove_stale(staging_root: Path) -> None:
    cutoff = time.time() - STALE_STAGING_SECONDS
    for entry in staging_root.iterdir():
        try:
            if entry.is_dir() and entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry, ignore_errors=True)
        except FileNotFoundError:
            continue  # another writer removed it first


class LocalArtifactStore:
    """An ``ArtifactStore`` rooted at a directory, created on first write."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*_key_parts(key))

    def read_bytes(self, key: str) -> bytes:
        """The bytes stored under ``key``."""
        return self._path(key).read_bytes()

    def write_bytes(self, key: str, data: bytes) -> None:
        """Write to a temp file beside the target, flush it to disk, then rename over it."""
        atomic.write_bytes(self._path(key), data, store=_STORE)

    def exists(self, key: str) -> bool:
        """Whether a file or directory exists under ``key``."""
        return self._path(key).exists()

    def list_children(self, prefix: str) -> list[str]:
        """Visible entries directly under ``prefix`` (dot-names are in-progress work)."""
        path = self._path(prefix) if prefix else self.root
        if not path.is_dir():
            return []
        return sorted(entry.name for entry in path.iterdir() if not entry.name.startswith("."))

    def publish(self, prefix: str, files: Mapping[str, bytes]) -> bool:
        """Build the files in a hidden staging directory, then rename it into place.

        Raises:
            StorageFullError: the disk filled up; the staging directory is gone and nothing
                new is visible.
        """
        with atomic.reporting_full_disk(_STORE):
            return self._publish(prefix, files)

    def _publish(self, prefix: str, files: Mapping[str, bytes]) -> bool:
        target = self._path(prefix)
        for name in files:
            _key_parts(name)
        if target.exists():
            return False
        staging_root = self.root / _STAGING
        staging_root.mkdir(parents=True, exist_ok=True)
        _remove_stale(staging_root)
        staging = Path(tempfile.mkdtemp(dir=staging_root))
        try:
            for name, data in files.items():
                path = staging.joinpath(*_key_parts(name))
                path.parent.mkdir(parents=True, exist_ok=True)
                with path.open("wb") as stream:
                    stream.write(data)
                    stream.flush()
                    os.fsync(stream.fileno())
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                # rename(2) of a directory fails when the target is a non-empty directory,
                # so two writers racing for one version number cannot both win.
                os.rename(staging, target)
            except OSError as exc:
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                    return False
                raise
            return True
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
