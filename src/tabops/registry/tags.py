"""Version tags: free labels such as ``1.0`` on a model's versions, kept in one record per model.

A tag names a release the way the seed's ``upload --tag 1.0`` did; unlike an alias it does not
move: it stays on every version it was given to, and ``find`` answers with the newest one.
The record, ``<name>/tags.json`` (``{"<version>": ["1.0", ...]}``), is changed by
compare-and-set on the store, retried when another writer got there first, so two taggers at
once lose nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from tabops.errors import Problem, RegistryError
from tabops.names import is_model_name
from tabops.registry.store import ArtifactStore

TAG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
TAG_RULE = (
    "use letters, digits, '.', '_' and '-', starting with a letter or a digit, at most 64 "
    "characters, and not digits only (that reads as a version number)"
)
TAGS_RECORD = "tags.json"
# Each retry follows a write that succeeded elsewhere, so this many means a crowd, not a bug.
MAX_TAG_ATTEMPTS = 50
_TAG = re.compile(TAG_PATTERN)
_DIGITS = re.compile(r"[0-9]+")


def is_tag(text: object) -> bool:
    """Whether ``text`` may be a version tag."""
    return (
        isinstance(text, str)
        and _TAG.fullmatch(text) is not None
        and _DIGITS.fullmatch(text) is None
    )


def check_tags(tags: Iterable[str]) -> list[str]:
    """The tags, in order and without repeats, when every one follows the tag rule.

    Raises:
        RegistryError: a tag breaks the rule (the message names it and states the rule).
    """
    checked: list[str] = []
    for tag in tags:
        if not is_tag(tag):
            raise RegistryError(f"invalid tag {tag!r}: {TAG_RULE}", [Problem("tag", TAG_RULE)])
        if tag not in checked:
            checked.append(tag)
    return checked


def _record_key(name: str) -> str:
    if not is_model_name(name):
        raise RegistryError(f"invalid model name {name!r}", [Problem("name", "not a model name")])
    return f"{name}/{TAGS_RECORD}"


def _parse(raw: bytes, key: str) -> dict[int, list[str]]:
    """The record's tags by version; entries that are not a version's list of tags are dropped."""
    try:
        document: Any = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RegistryError(f"the registry's {key} is unreadable ({exc})") from exc
    if not isinstance(document, dict):
        raise RegistryError(f"the registry's {key} does not hold a JSON object")
    result: dict[int, list[str]] = {}
    for version, tags in document.items():
        if _DIGITS.fullmatch(version) and isinstance(tags, list):
            kept = [tag for tag in tags if is_tag(tag)]
            if kept:
                result[int(version)] = kept
    return result


def _serialize(tags: dict[int, list[str]]) -> bytes:
    document = {str(version): tags[version] for version in sorted(tags) if tags[version]}
    return json.dumps(document, indent=2).encode() + b"\n"


class VersionTags:
    """The tags of every model's versions in one artifact store."""

    def __init__(self, store: ArtifactStore) -> None:
        self.store = store

    def of(self, name: str) -> dict[int, list[str]]:
        """Every tagged version of a model and its tags ({} when none is tagged)."""
        key = _record_key(name)
        try:
            return _parse(self.store.read_bytes(key), key)
        except FileNotFoundError:
            return {}

    def find(self, name: str, tag: str) -> int | None:
        """The newest version carrying ``tag``, or None when no version does."""
        versions = [version for version, tags in self.of(name).items() if tag in tags]
        return max(versions, default=None)

    def add(self, name: str, version: int, tags: Iterable[str]) -> list[str]:
        """Give a version tags (those it has already are kept once); returns all its tags.

        Raises:
            RegistryError: an invalid tag or model name, or the record could not be changed.
        """
        wanted = check_tags(tags)
        return self._change(name, version, lambda old: [*old, *(t for t in wanted if t not in old)])

    def remove(self, name: str, version: int, tags: Iterable[str]) -> list[str]:
        """Take tags off a version (absent ones are ignored); returns the tags it keeps.

        Raises:
            RegistryError: an invalid tag or model name, or the record could not be changed.
        """
        unwanted = check_tags(tags)
        return self._change(name, version, lambda old: [t for t in old if t not in unwanted])

    def _change(self, name: str, version: int, edit: Callable[[list[str]], list[str]]) -> list[str]:
        key = _record_key(name)
        for _attempt in range(MAX_TAG_ATTEMPTS):
            try:
                raw, seen = self.store.read_versioned(key)
            except FileNotFoundError:
                current: dict[int, list[str]] = {}
                expected: str | None = None
            else:
                current, expected = _parse(raw, key), seen
            old = current.get(version, [])
            new = edit(old)
            if new == old:
                return new
            current[version] = new
            if self.store.write_if(key, _serialize(current), expected):
                return new
        raise RegistryError(
            f"could not change the tags of {name}:{version}: the record kept changing "
            f"under {MAX_TAG_ATTEMPTS} other writers; retry"
        )
