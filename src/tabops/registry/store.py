"""The interface every artifact store implements (local directory by default)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


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

    def exists(self, key: str) -> bool:
        """Whether ``key`` (a file or a published prefix) exists."""
        ...

    def list_children(self, prefix: str) -> list[str]:
        """Names directly under ``prefix`` (files and sub-prefixes), sorted; [] if none."""
        ...

    def publish(self, prefix: str, files: Mapping[str, bytes]) -> bool:
        """Make ``files`` appear under ``prefix`` all at once, or else in the order given.

        A store that cannot publish a folder atomically (object storage) writes the files
        in order; the registry lists the manifest last and counts a version only once its
        manifest exists.

        Returns:
            False, writing nothing visible, when ``prefix`` already exists.
        """
        ...
