"""What a pickle or joblib file would import, read from its opcodes; unsafe files are refused.

``scan_pickle`` never imports or calls anything the file names: it decompresses the file the
way ``joblib.load`` would (zlib, gzip, bz2, lzma and xz, by their leading bytes; lz4 is
refused) and follows its opcodes symbolically (``pickle_trace``). ``check_pickle`` refuses a
file naming any global outside the allow-list (``pickle_allowlist``) unless the caller trusts it.
"""

from __future__ import annotations

import bz2
import io
import lzma
import os
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from tabops.errors import ModelImportError, Problem, UnsafeModelError
from tabops.model.pickle_allowlist import is_allowed_global, is_allowed_pair
from tabops.model.pickle_trace import (
    JOBLIB_WRAPPER,
    BrokenPickleError,
    ByteStream,
    Findings,
    trace_stream,
)

__all__ = ["PickleScan", "check_pickle", "is_allowed_global", "scan_pickle"]

# joblib's own test of a file's first bytes, in joblib's order ("ZF": joblib before 0.10).
_PREFIXES = (
    (b"ZF", "joblib-0.9"),
    (b"\x78", "zlib"),
    (b"\x1f\x8b", "gzip"),
    (b"BZ", "bz2"),
    (b"\x5d\x00", "lzma"),
    (b"\xfd\x37\x7a\x58\x5a", "xz"),
    (b"\x04\x22\x4d\x18", "lz4"),
)
ZIP_PREFIX = b"PK\x03\x04"
_CHUNK = 1 << 16
TRUST_HINT = "Pass --trust-pickle only if you trust where the file came from."


@dataclass(frozen=True)
class PickleScan:
    """What loading a pickle file would import, and which of those are refused."""

    format: str
    """``pickle``, ``joblib``, or ``joblib+`` a compression: zlib, gzip, bz2, lzma or xz."""
    globals: tuple[str, ...]
    """Every ``"module.qualname"`` the file would import, sorted and unique; names in ``<>``
    stand for what cannot be named so (``<STACK_GLOBAL with a computed name>``)."""
    refused: tuple[str, ...]
    """Those outside the allow-list, sorted; every name in ``<>`` is refused."""


def compression_of(head: bytes) -> str | None:
    """The compression joblib would read in a file starting with ``head``; None for none."""
    for prefix, name in _PREFIXES:
        if head.startswith(prefix):
            return name
    return None


def scan_pickle(path: Path) -> PickleScan:
    """Every global the pickle or joblib file at ``path`` would import, running none of it.

    Raises:
        ModelImportError: the file cannot be read, is empty, is not a pickle, is truncated,
            or is compressed with lz4 (not installed) or an old joblib format.
    """
    try:
        with path.open("rb") as file:
            head = file.read(8)
    except OSError as exc:
        raise _unreadable(path, exc.strerror or str(exc)) from exc
    if not head:
        raise _unreadable(path, "the file is empty")
    if head.startswith(ZIP_PREFIX):
        raise _unreadable(path, "it is a zip archive (a skops file?), not a pickle")
    compression = compression_of(head)
    if compression == "lz4":
        raise _unreadable(path, "it is compressed with lz4, which is not installed")
    if compression == "joblib-0.9":
        raise _unreadable(path, "it was written by joblib before 0.10; save it again")
    findings = Findings()
    try:
        with _decompressed(path, compression) as (stream, size):
            trace_stream(stream, size, findings)
            # A compressed file must also end where its compression says: cut short, it
            # is damaged even when the pickle inside happens to be whole.
            while compression is not None and stream.read(_CHUNK):
                pass
    except BrokenPickleError as exc:
        raise _unreadable(path, str(exc)) from exc
    except (EOFError, OSError, ValueError, OverflowError, RecursionError, zlib.error) as exc:
        reason = "the file ends early (truncated)" if isinstance(exc, EOFError) else str(exc)
        raise _unreadable(path, reason) from exc
    names = {f"{module}.{name}" for module, name in findings.pairs} | findings.oddities
    refused = {
        f"{module}.{name}" for module, name in findings.pairs if not is_allowed_pair(module, name)
    } | findings.oddities
    if compression is not None:
        file_format = f"joblib+{compression}"
    else:
        file_format = "joblib" if JOBLIB_WRAPPER in findings.pairs else "pickle"
    return PickleScan(file_format, tuple(sorted(names)), tuple(sorted(refused)))


def check_pickle(path: Path, *, trust: bool) -> PickleScan:
    """Scan ``path`` and refuse it when it would import anything outside the allow-list.

    Raises:
        UnsafeModelError: the file names refused globals and ``trust`` is False; the
            message and one problem per global name each of them.
        ModelImportError: the file is not a pickle ``scan_pickle`` can read.
    """
    scan = scan_pickle(path)
    if scan.refused and not trust:
        raise unsafe_model_error(path.name, scan.refused)
    return scan


def unsafe_model_error(file_name: str, refused: tuple[str, ...]) -> UnsafeModelError:
    """The refusal of a model file that would import ``refused``."""
    return UnsafeModelError(
        f"{file_name} would import {', '.join(refused)}; refusing to load it. {TRUST_HINT}",
        [Problem("model", f"would import {name}, which is not allowed") for name in refused],
    )


def _unreadable(path: Path, reason: str) -> ModelImportError:
    message = f"{path.name} is not a model file tabops can read: {reason}"
    return ModelImportError(message, [Problem("model", reason)])


@contextmanager
def _decompressed(path: Path, compression: str | None) -> Iterator[tuple[ByteStream, int | None]]:
    """The pickle stream in ``path``, and its size when skipping may seek."""
    with path.open("rb") as raw:
        if compression is None:
            yield raw, os.fstat(raw.fileno()).st_size
        elif compression in ("zlib", "gzip"):
            wbits = zlib.MAX_WBITS if compression == "zlib" else 16 + zlib.MAX_WBITS
            yield io.BufferedReader(_ZlibReader(raw, wbits), _CHUNK), None
        elif compression == "bz2":
            with bz2.BZ2File(raw) as stream:
                yield stream, None
        else:
            with lzma.LZMAFile(raw) as stream:
                yield stream, None


class _ZlibReader(io.RawIOBase):
    """A zlib (or gzip) stream decompressed as it is read, never more than asked at once."""

    def __init__(self, raw: BinaryIO, wbits: int) -> None:
        super().__init__()
        self._raw = raw
        self._decompressor = zlib.decompressobj(wbits)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]  # typeshed's Buffer
        wanted = len(buffer)
        while wanted and not self._decompressor.eof:
            data = self._decompressor.unconsumed_tail or self._raw.read(_CHUNK)
            out = self._decompressor.decompress(data, wanted)
            if out:
                buffer[: len(out)] = out
                return len(out)
            if not data:
                raise EOFError("the compressed stream ends early")
        return 0
