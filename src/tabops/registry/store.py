"""The interface every artifact store implements (local directory by default)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


def key_parts(key: str) -> list[str]:
    """The parts of a ``/``-separated key; refuses keys that could leave the root or hide.

    Raises:
        ValueError: an empty key, or one with an empty, ``.``, ``..`` or dot-named part
            (dot-names are the stores' own: staging, locks, claims).
    """
    parts = [part for part in key.split("/") if part]
    if not parts or any(part in (".", "..") or part.startswith(".") for part in parts):
        raise ValueError(f"invalid artifact key {key!r}")
    return parts


class ArtifactStore(Protocol):
    """Keyed bytes with atomic writes and all-or-nothing publication of a set of files.

    Keys are ``/``-separated relative paths such as ``heart-failure/versions/3/manifest.json``.
    """

    def read_bytes(self, key: str) -> bytes:
        """The bytes stored under ``key``; ``FileNotFoundError`` when there are none."""
        ...

    def write_bytes(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` atomically: readers see the old or the new bytes."""
        ...

    def read_versioned(self, key: str) -> tuple[bytes, str]:
        """The bytes under ``key`` and an opaque tag of that content, for ``write_if``.

        Raises:
            FileNotFoundError: nothing is stored under ``key``.
        """
        ...

    def write_if(self, key: str, data: bytes, expected: str | None) -> bool:
        """Store ``data`` under ``key`` only if it still holds the content tagged ``expected``.

        With ``expected`` None, only if nothing is stored under ``key`` yet.

        Returns:
            False, writing nothing, when another writer changed the key first.
        """
        ...

    def exists(self, key: str) -> bool:
        """Whether ``key`` (a file or a published prefix) exists."""
        ...

    def list_children(self, prefix: str) -> list[str]:
        """Names directly under ``prefix`` (files and sub-prefixes), sorted; [] if none."""
        ...

    def list_children_holding(self, prefix: str, file: str) -> list[str]:
        """Names directly under ``prefix`` whose ``<name>/<file>`` exists, sorted.

        One question where asking ``exists`` of each child would take a round trip each
        on a remote store.
        """
        ...

    def publish(self, prefix: str, files: Mapping[str, bytes]) -> bool:
        """Make ``files`` appear under ``prefix`` all at once, or else the last one last.

        A store that cannot publish a folder atomically (object storage) first claims
        ``prefix`` so that no other writer can publish there, then writes the files, the
        last one given last; the registry gives the manifest last and counts a version only
        once its manifest exists.

        Returns:
            False, writing nothing visible, when ``prefix`` already exists or is claimed.
        """
        ...
