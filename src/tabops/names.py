"""The naming rules of model names and aliases, which become folder and file names.

Each pattern is anchored with ``^`` and ``$`` so that pydantic and JSON Schema read it as a
whole-text match; Python code matches it with ``re.fullmatch``, because Python's ``$`` also
matches before a trailing newline.
"""

from __future__ import annotations

import re

MODEL_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
MODEL_NAME_RULE = (
    "use a-z, 0-9, '-' and '_', starting with a letter or a digit, at most 63 characters"
)
ALIAS_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"
ALIAS_RULE = "use a-z, 0-9, '-' and '_', starting with a letter, at most 32 characters"

# ASCII classes only: no re.IGNORECASE and no \w or \d, which would admit Unicode lookalikes.
_MODEL_NAME = re.compile(MODEL_NAME_PATTERN)
_ALIAS = re.compile(ALIAS_PATTERN)


def is_model_name(text: object) -> bool:
    """Whether ``text`` may name a model (and so a folder of the registry)."""
    return isinstance(text, str) and _MODEL_NAME.fullmatch(text) is not None


def is_alias(text: object) -> bool:
    """Whether ``text`` may name an alias (and so a file of the registry).

    An alias starts with a letter, so it is never mistaken for a version number.
    """
    return isinstance(text, str) and _ALIAS.fullmatch(text) is not None
