"""Artifact store on a local directory: temp files and renames make every write atomic."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from tabops import atomic
from tabops.registry.store import key_parts

_STAGING = ".staging"
_LOCK = (".locks", "write-if.lock")
_STORE = "model registry"
# A registration takes seconds; staging left this long belongs to a process that died.
STALE_STAGING_SECONDS = 3600.0


def _tag(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


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
        return self.root.joinpath(*key_parts(key))

    def read_bytes(self, key: str) -> bytes:
        """The bytes stored under ``key``."""
        return self._path(key).read_bytes()

    def write_bytes(self, key: str, data: bytes) -> None:
        """Write to a temp file beside the target, flush it to disk, then rename over it."""
        atomic.write_bytes(self._path(key), data, store=_STORE)

    def read_versioned(self, key: str) -> tuple[bytes, str]:
        """The bytes under ``key`` and their sha256 as the tag ``write_if`` compares."""
        data = self._path(key).read_bytes()
        return data, _tag(data)

    def write_if(self, key: str, data: bytes, expected: str | None) -> bool:
        """Replace ``key`` atomically if its content still has the tag ``expected``.

        Writers of this root take one lock file in turn (``flock``), so no other
        ``write_if`` comes between the comparison and the rename.
        """
        path = self._path(key)
        with self._locked():
            try:
                current: str | None = _tag(path.read_bytes())
            except FileNotFoundError:
                current = None
            if current != expected:
                return False
            atomic.write_bytes(path, data, store=_STORE)
            return True

    @contextmanager
    def _locked(self) -> Iterator[None]:
        import fcntl  # POSIX; imported here so that reading a registry needs none of it

        path = self.root.joinpath(*_LOCK)
        with atomic.reporting_full_disk(_STORE):
            path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def exists(self, key: str) -> bool:
        """Whether a file or directory exists under ``key``."""
        return self._path(key).exists()

    def list_children(self, prefix: str) -> list[str]:
        """Visible entries directly under ``prefix`` (dot-names are in-progress work)."""
        path = self._path(prefix) if prefix else self.root
        if not path.is_dir():
            return []
        return sorted(entry.name for entry in path.iterdir() if not entry.name.startswith("."))

    def list_children_holding(self, prefix: str, file: str) -> list[str]:
        """Visible entries under ``prefix`` holding a file ``file``."""
        parts = key_parts(file)
        path = self._path(prefix) if prefix else self.root
        return [
            child for child in self.list_children(prefix) if path.joinpath(child, *parts).is_file()
        ]

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
            key_parts(name)
        if target.exists():
            return False
        staging_root = self.root / _STAGING
        staging_root.mkdir(parents=True, exist_ok=True)
        _remove_stale(staging_root)
        staging = Path(tempfile.mkdtemp(dir=staging_root))
        try:
            for name, data in files.items():
                path = staging.joinpath(*key_parts(name))
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
