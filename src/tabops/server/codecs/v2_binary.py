"""The Open Inference Protocol's binary tensor data extension: a JSON header, then raw tensors.

A request whose ``Inference-Header-Content-Length`` header is set carries that many bytes
of JSON, then the data of every input whose ``parameters.binary_data_size`` is set, in the
order of the inputs: little-endian values, packed; a BOOL is one byte; a BYTES element is
its length (4 bytes, little-endian) followed by its bytes. Outputs asked for in binary are
written the same way, after the JSON header of the answer.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

import numpy as np

from tabops.errors import InvalidRequestError, Problem

HEADER_LENGTH = "Inference-Header-Content-Length"
"""The header giving the length of the JSON part of a request or an answer."""
BYTES = "BYTES"
FIXED_TYPES: dict[str, np.dtype[np.generic]] = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
"""Every fixed-size datatype of the protocol, as numpy reads it from the wire."""
_LENGTH = struct.Struct("<I")
_HEADER_KEY = HEADER_LENGTH.lower().encode()
_NO_DATA = memoryview(b"")


def json_part(headers: Iterable[tuple[bytes, bytes]], body: bytes) -> bytes:
    """The JSON of a request body: all of it, unless ``HEADER_LENGTH`` sets where it ends.

    What the depth limit reads: binary data is no JSON, its bytes no brackets.
    """
    for key, value in headers:
        if key == _HEADER_KEY:
            text = value.decode("latin-1").strip()
            return body[: int(text)] if text.isdigit() else body
    return body


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, memoryview]:
    """The JSON header of a request and the binary data that follows it.

    Raises:
        InvalidRequestError: the header length is not a number within the body.
    """
    if header_length is None:
        return body, _NO_DATA
    text = header_length.strip()
    if not text.isdigit() or int(text) > len(body):
        problem = f"{header_length[:40]!r} is not a length within the {len(body)}-byte body"
        raise InvalidRequestError(f"{HEADER_LENGTH} is invalid", [Problem(HEADER_LENGTH, problem)])
    length = int(text)
    return body[:length], memoryview(body)[length:]


class BinaryReader:
    """Reads the binary inputs of a request from its data, in order, checking every size."""

    def __init__(self, data: memoryview) -> None:
        self.data = data
        self.offset = 0

    def read(self, field: str, datatype: str, count: int, size: object) -> np.ndarray | list[bytes]:
        """``count`` elements of ``datatype`` from the next ``size`` bytes.

        Raises:
            InvalidRequestError: naming ``field`` when the sizes do not add up.
        """
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise _size_error(field, f"binary_data_size {size!r} is not a byte count")
        left = len(self.data) - self.offset
        if size > left:
            raise _size_error(
                field, f"binary_data_size {size} exceeds the {left} bytes of data left"
            )
        start, self.offset = self.offset, self.offset + size
        if datatype == BYTES:
            return _read_bytes(field, self.data[start : self.offset], count)
        dtype = FIXED_TYPES[datatype]
        if size != count * dtype.itemsize:
            raise _size_error(
                field,
                f"binary_data_size {size} does not hold {count} {datatype} values "
                f"({count * dtype.itemsize} bytes)",
            )
        return np.frombuffer(self.data, dtype=dtype, count=count, offset=start)

    def check_finished(self) -> None:
        """Refuse data beyond what the inputs claimed (a size that was too small).

        Raises:
            InvalidRequestError: bytes are left over.
        """
        left = len(self.data) - self.offset
        if left:
            raise _size_error("inputs", f"{left} bytes of binary data follow the last binary input")


def _read_bytes(field: str, data: memoryview, count: int) -> list[bytes]:
    """``count`` length-prefixed elements filling ``data`` exactly."""
    values: list[bytes] = []
    offset, end = 0, len(data)
    while offset < end:
        if offset + 4 > end:
            raise _size_error(field, f"element {len(values)} has a truncated length prefix")
        (length,) = _LENGTH.unpack_from(data, offset)
        offset += 4
        if offset + length > end:
            raise _size_error(
                field, f"element {len(values)} claims {length} bytes, {end - offset} are left"
            )
        values.append(bytes(data[offset : offset + length]))
        offset += length
    if len(values) != count:
        raise _size_error(field, f"holds {len(values)} BYTES elements, the shape says {count}")
    return values


def pack_bytes(values: Sequence[str]) -> bytes:
    """Text elements as BYTES on the wire: each its 4-byte length, then its UTF-8."""
    parts = []
    for value in values:
        encoded = value.encode()
        parts.append(_LENGTH.pack(len(encoded)))
        parts.append(encoded)
    return b"".join(parts)


def _size_error(field: str, problem: str) -> InvalidRequestError:
    return InvalidRequestError(f"the binary data of {field} is invalid", [Problem(field, problem)])
