"""The inert values a pickle scan keeps on its stack: records of what the loader would build.

None of them holds anything the file names but strings: a ``GlobalRef`` is a module and a
name, a ``Built`` says which value was called with which arguments. Containers keep at most
``MAX_ITEMS`` items, enough for what the scan reads (a joblib array's description).
"""

from __future__ import annotations

from tabops.model.pickle_stream import BrokenPickleError

MAX_ITEMS = 1024
"""Containers keep this many items; a joblib array's description needs a handful."""


class GlobalRef:
    """A global the loader would import: ``module`` and (qualified) ``name``."""

    __slots__ = ("module", "name")

    def __init__(self, module: str, name: str) -> None:
        self.module = module
        self.name = name

    @property
    def pair(self) -> tuple[str, str]:
        """``(module, name)``."""
        return (self.module, self.name)


class Built:
    """What calling ``factory`` would return; ``state`` is the last BUILD's argument."""

    __slots__ = ("args", "attributes", "factory", "initialised", "state")

    def __init__(self, factory: object, args: object, *, initialised: bool) -> None:
        self.factory = factory
        self.args = args
        self.initialised = initialised
        self.state: object = None
        self.attributes: dict[str, object] = {}


class ListValue:
    """A list, with its first ``MAX_ITEMS`` items."""

    __slots__ = ("complete", "items")

    def __init__(self, items: list[object] | None = None) -> None:
        self.items: list[object] = []
        self.complete = True
        self.extend(items or [])

    def extend(self, items: list[object]) -> None:
        """Add ``items``, as far as there is room."""
        room = MAX_ITEMS - len(self.items)
        self.items.extend(items[:room])
        self.complete = self.complete and len(items) <= room


class DictValue:
    """A dictionary as its key-value pairs in order (keys may be unhashable records)."""

    __slots__ = ("complete", "pairs")

    def __init__(self) -> None:
        self.pairs: list[tuple[object, object]] = []
        self.complete = True

    def update(self, items: list[object]) -> None:
        """Add keys and values, alternating in ``items``."""
        if len(items) % 2:
            raise BrokenPickleError("a dictionary with an odd number of items")
        for index in range(0, len(items), 2):
            if len(self.pairs) >= MAX_ITEMS:
                self.complete = False
                return
            self.pairs.append((items[index], items[index + 1]))


class Opaque:
    """A value the scan does not follow: a set, a long string, what a call returned."""

    __slots__ = ()


def is_global(value: object, pair: tuple[str, str]) -> bool:
    """Whether ``value`` is the global ``pair``."""
    return isinstance(value, GlobalRef) and value.pair == pair
