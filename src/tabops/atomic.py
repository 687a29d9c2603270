"""Atomic file writes: write beside the target, flush to disk, rename over it.

A reader (or a process restarted after a crash) sees the old file or the new one, never
half of one, and a failed write leaves no temp file behind. A write that finds the disk full
(or the disk quota spent) raises ``StorageFullError`` naming the store it was writing to.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from tabops.errors import StorageFullError

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
"""The errors a write gets when the disk has no space left, or the user's quota none."""

_DEFAULT_STORE = "tabops files"


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says the disk is full or the disk quota is spent."""
    return isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS


def storage_full(store: str, reason: str) -> StorageFullError:
    """The error saying the disk holding ``store`` is full, and why."""
    return StorageFullError(
        f"the disk holding the {store} is full ({reason}); free space on it and retry"
    )


@contextmanager
def reporting_full_disk(store: str) -> Iterator[None]:
    """Turn a full disk met inside the block into ``StorageFullError`` naming ``store``."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in DISK_FULL_ERRNOS:
            raise
        # The errno's own words: a library's message (pyarrow's) may hold the file's path.
        raise storage_full(store, os.strerror(exc.errno)) from exc


@contextmanager
def _swapped_in(path: Path, store: str) -> Iterator[Path]:
    """A temp path beside ``path``, renamed over it when the block ends without error."""
    with reporting_full_disk(store):
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        os.close(handle)
        try:
            yield Path(name)
            os.replace(name, path)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise


@contextmanager
def replacing(path: Path, *, store: str = _DEFAULT_STORE) -> Iterator[IO[bytes]]:
    """A binary stream whose contents replace ``path`` when the block ends without error.

    Raises:
        StorageFullError: the disk filled up before the file was complete; ``path`` is as
            it was.
    """
    with _swapped_in(path, store) as temp, temp.open("wb") as stream:
        yield stream
        stream.flush()
        os.fsync(stream.fileno())


def write_bytes(path: Path, data: bytes, *, store: str = _DEFAULT_STORE) -> None:
    """Replace ``path`` with ``data``, atomically (``StorageFullError`` on a full disk)."""
    with replacing(path, store=store) as stream:
        stream.write(data)


def write_with(path: Path, write: Callable[[Path], object], *, store: str = _DEFAULT_STORE) -> None:
    """Replace ``path`` with what ``write`` writes to the temp path it is given.

    Raises:
        StorageFullError: the disk filled up before the file was complete; ``path`` is as
            it was.
    """
    with _swapped_in(path, store) as temp:
        write(temp)
