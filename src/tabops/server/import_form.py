"""The form of an import (``POST /v1/models/{name}/versions``), read into what it asks for."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from tabops.config import Settings
from tabops.errors import ForbiddenBySettingsError, InvalidRequestError, Problem
from tabops.names import ALIAS_RULE, is_alias
from tabops.server.forms import FormUpload, SpooledForm
from tabops.server.uploads import FILE_SUFFIXES, file_format_of

if TYPE_CHECKING:  # importing pulls in training (0.66 s): imported when a form is read
    from tabops.training.importing import ImportOptions

FILE_FIELDS = ("model", "sample")
"""The files of the form."""
TEXT_FIELDS = ("target", "trust_pickle", "positive_class", "threshold", "gates", "promote")
"""Its text fields; ``gates`` may repeat."""

_GATE = re.compile(r"^\s*([a-z0-9_]+)\s*(>=|<=|>|<)\s*(-?\d+(?:\.\d+)?)\s*$")
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off", "")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class ImportRequest:
    """What the form asks for, checked: the import's options and an alias to move."""

    options: ImportOptions
    promote: str | None


def read_import_form(form: SpooledForm, settings: Settings) -> ImportRequest:
    """The import the form asks for.

    Raises:
        InvalidRequestError: a file missing, an unknown, repeated or invalid field.
        ForbiddenBySettingsError: ``trust_pickle`` while the server does not allow it.
    """
    problems = [Problem(file, "required") for file in FILE_FIELDS if file not in form.files]
    problems += [
        Problem(field, f"unknown field; the form takes {', '.join(FILE_FIELDS + TEXT_FIELDS)}")
        for field in form.fields
        if field not in TEXT_FIELDS
    ]
    problems += [
        Problem(field, "give it once")
        for field, values in form.fields.items()
        if field in TEXT_FIELDS and field != "gates" and len(values) > 1
    ]
    if problems:
        raise InvalidRequestError("the form is invalid", problems)
    value = {field: values[0] for field, values in form.fields.items() if field != "gates"}
    trust = _boolean(value.get("trust_pickle", ""), "trust_pickle")
    if trust and not settings.security.allow_trust_pickle:
        raise ForbiddenBySettingsError(
            "this server does not load untrusted pickles: trust_pickle=true needs the "
            "security.allow_trust_pickle setting (import the file with 'tabops models import "
            "--trust-pickle' on the server instead)",
            [Problem("trust_pickle", "not allowed on this server")],
        )
    promote = value.get("promote") or None
    if promote is not None and not is_alias(promote):
        raise InvalidRequestError(f"invalid alias {promote!r}", [Problem("promote", ALIAS_RULE)])
    threshold, gates = _threshold(value.get("threshold")), _gates(form.fields.get("gates", []))
    from tabops.training.importing import ImportOptions  # here, not at the top: see there

    options = ImportOptions(
        target=value.get("target") or None,
        trust_pickle=trust,
        positive_class=value.get("positive_class") or None,
        threshold=threshold,
        gates=gates,
    )
    return ImportRequest(options, promote)


def _boolean(text: str, field: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise InvalidRequestError(f"{field} is not true or false", [Problem(field, "true or false")])


def _threshold(text: str | None) -> float | None:
    if text is None or not text.strip():
        return None
    try:
        threshold = float(text)
    except ValueError:
        threshold = math.nan
    if not 0 <= threshold <= 1:
        raise InvalidRequestError(
            f"invalid threshold {text!r}", [Problem("threshold", "a number from 0 to 1")]
        )
    return threshold


def _gates(texts: list[str]) -> dict[str, str]:
    """``["roc_auc>=0.8"]`` as the project file writes gates: ``{"roc_auc": ">= 0.8"}``."""
    gates: dict[str, str] = {}
    for index, text in enumerate(texts):
        match = _GATE.match(text)
        field = f"gates[{index}]"
        if match is None:
            raise InvalidRequestError(
                f"invalid gate {text!r}", [Problem(field, "like 'roc_auc>=0.8'")]
            )
        metric, operator, value = match.groups()
        if metric in gates:
            raise InvalidRequestError(
                f"two gates on {metric}", [Problem(field, "one gate per metric")]
            )
        gates[metric] = f"{operator} {value}"
    return gates


def sample_file_name(upload: FormUpload) -> str:
    """A safe file name for the sample, its suffix the format its name or type says.

    Raises:
        InvalidRequestError: neither says CSV or Parquet.
    """
    file_format = file_format_of(upload.filename, upload.media_type)
    if file_format is None:
        raise InvalidRequestError(
            f"cannot tell the format of the sample {upload.filename!r}: name it .csv or .parquet",
            [Problem("sample", "a .csv or .parquet file")],
        )
    name = safe_file_name(upload.filename, "sample")
    if FILE_SUFFIXES.get(PurePosixPath(name).suffix.lower()) != file_format:
        name = f"{name}.{file_format}"
    return name


def safe_file_name(filename: str, default: str) -> str:
    """A file name of letters, digits, '.', '-' and '_' kept from the client's, else ``default``.

    The client's name is only a hint (the format is read from the bytes): it is kept so
    that what the version records about its source reads as the user knows the file.
    """
    name = _UNSAFE_NAME.sub("_", PurePosixPath(filename.replace("\\", "/")).name)
    name = name.lstrip(".")[-100:]
    return name or default
