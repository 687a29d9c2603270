"""A local copy of a remote artifact store's answers: a restart or an outage keeps serving.

Three kinds of entries, each in a folder of its own under the cache folder:

- ``files``: content that never changes once written (a version's files other than its
  manifest); read from here before asking the store;
- ``values``: the last content seen of a key that may change (aliases, the default model
  record, manifests), answered only when the store cannot be reached;
- ``listings``: the last answer seen to a listing, likewise.

Every write is atomic, so processes sharing the folder see whole entries. The cache is an
aid: an entry it cannot write is logged and skipped, never an error of the read it serves.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Literal

from tabops import atomic
from tabops.errors import StorageFullError
from tabops.registry.store import key_parts

logger = logging.getLogger(__name__)

Kind = Literal["files", "values", "listings"]
_STORE = "registry cache"


class StoreCache:
    """Entries of one remote store (one bucket and prefix) under ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, kind: Kind, key: str) -> Path:
        return self.folder.joinpath(kind, *key_parts(key))

    def _listing_path(self, prefix: str, file: str | None) -> Path:
        # Dot-names never collide with a key's parts, which key_parts keeps dot-free.
        folder = self.folder.joinpath("listings", *(key_parts(prefix) if prefix else []))
        return folder / (f".holding.{'.'.join(key_parts(file))}" if file else ".children")

    def read(self, kind: Kind, key: str) -> bytes | None:
        """The entry of ``key``, or None when there is none."""
        try:
            return self._path(kind, key).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None

    def write(self, kind: Kind, key: str, data: bytes) -> None:
        """Keep ``data`` as the entry of ``key``."""
        self._write(self._path(kind, key), data)

    def remove(self, kind: Kind, key: str) -> None:
        """Forget the entry of ``key`` (the store says it no longer exists)."""
        try:
            self._path(kind, key).unlink(missing_ok=True)
        except (NotADirectoryError, IsADirectoryError):
            return

    def read_listing(self, prefix: str, file: str | None = None) -> list[str] | None:
        """The last listing seen of ``prefix`` (of children holding ``file``), or None."""
        try:
            names = json.loads(self._listing_path(prefix, file).read_bytes())
        except (FileNotFoundError, NotADirectoryError, ValueError):
            return None
        return [str(name) for name in names] if isinstance(names, list) else None

    def write_listing(self, prefix: str, names: list[str], file: str | None = None) -> None:
        """Keep a listing of ``prefix`` (of children holding ``file``)."""
        self._write(self._listing_path(prefix, file), json.dumps(names).encode())

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        try:
            atomic.write_bytes(path, data, store=_STORE)
        except (OSError, StorageFullError) as exc:
            logger.warning("could not keep %s in the registry cache: %s", path, exc)
