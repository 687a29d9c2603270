"""One Parquet file from Parquet parts written in parallel, by copying bytes, not re-encoding.

A Parquet file is ``PAR1``, the column chunks of its row groups (plus any page indexes and
bloom filters), a footer, the footer's length and ``PAR1``. The footer is a Thrift
compact-protocol ``FileMetaData`` whose row groups record absolute file offsets. Parts
written with one schema are joined by copying each part's body in order and writing one
footer that lists every row group, its offsets moved by where its part's bytes landed.

The Thrift codec below is generic (it keeps every field it reads, known or not), so a
footer it does not change is written back byte for byte; only offsets, ordinals and the
row count are edited.
"""

from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from tabops.errors import DataError

MAGIC = b"PAR1"
_BLOCK = 1 << 20

# Thrift compact-protocol type ids (a bool field carries its value in its type: 1 or 2).
_TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT = range(1, 13)

# Field ids of parquet.thrift used here.
_FILE_NUM_ROWS, _FILE_ROW_GROUPS = 3, 4
_GROUP_COLUMNS, _GROUP_FILE_OFFSET, _GROUP_ORDINAL = 1, 5, 7
_CHUNK_FILE_PATH, _CHUNK_FILE_OFFSET, _CHUNK_META = 1, 2, 3
_CHUNK_OFFSETS = (4, 6)  # offset index, column index
_META_OFFSETS = (9, 10, 11, 14)  # data page, index page, dictionary page, bloom filter

Field = tuple[int, int, Any]
"""(field id, type id, value); a struct is a list of fields, a list is (type id, items)."""


@dataclass(frozen=True)
class Footer:
    """A Parquet file's decoded footer and the offset it starts at."""

    fields: list[Field]
    start: int


def read_footer(handle: BinaryIO, name: str) -> Footer:
    """The footer of the Parquet file open in ``handle`` (``name`` is for messages).

    Raises:
        DataError: the file is not a plain (unencrypted) Parquet file.
    """
    size = handle.seek(0, io.SEEK_END)
    handle.seek(max(size - 8, 0))
    tail = handle.read(8)
    handle.seek(0)
    if size < 12 or handle.read(4) != MAGIC or tail[-4:] != MAGIC:
        raise DataError(f"the scored partition {name} is not a Parquet file")
    length = int.from_bytes(tail[:4], "little")
    start = size - 8 - length
    if start < len(MAGIC):
        raise DataError(f"the scored partition {name} is not a Parquet file")
    handle.seek(start)
    fields, _end = _read_struct(handle.read(length), 0)
    return Footer(fields, start)


def copy_bytes(source: BinaryIO, destination: BinaryIO, offset: int, length: int) -> None:
    """Append ``length`` bytes of ``source`` from ``offset`` to ``destination``.

    Between two files the kernel copies them (``copy_file_range``), without passing them
    through this process (a buffered ``destination`` is flushed first). Anything else is
    copied a block at a time.
    """
    try:
        source_fd, destination_fd = source.fileno(), destination.fileno()
    except (OSError, io.UnsupportedOperation):
        source_fd = destination_fd = -1
    if source_fd >= 0 and hasattr(os, "copy_file_range"):
        destination.flush()
        try:
            copied = 0
            while copied < length:
                step = os.copy_file_range(
                    source_fd, destination_fd, length - copied, offset + copied
                )
                if step == 0:
                    raise DataError("a scored partition ended before its footer said it would")
                copied += step
            return
        except OSError:
            if copied:  # part of it is in place: carry on by hand from there
                offset, length = offset + copied, length - copied
    source.seek(offset)
    while length > 0:
        block = source.read(min(length, _BLOCK))
        if not block:
            raise DataError("a scored partition ended before its footer said it would")
        destination.write(block)
        length -= len(block)


class JoinedParquetWriter:
    """Writes Parquet parts of one schema, appended in order, as one Parquet file."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.position = 0
        self.footer: list[Field] | None = None
        self.row_groups: list[list[Field]] = []
        self.rows = 0

    def append(self, path: Path, footer: Footer | None = None) -> None:
        """Copy a whole Parquet file's row groups after those already written.

        ``footer`` is the file's, read beforehand by ``read_footer`` (by the process that
        wrote the file, say); otherwise it is read here.

        Raises:
            DataError: ``path`` is not a plain (unencrypted) Parquet file.
        """
        with path.open("rb") as part:
            footer = footer or read_footer(part, path.name)
            if self.position == 0:
                self.handle.write(MAGIC)
                self.position = len(MAGIC)
                self.footer = footer.fields
            shift = self.position - len(MAGIC)  # the part's body started right after its magic
            for group in _value(footer.fields, _FILE_ROW_GROUPS, (_STRUCT, []))[1]:
                self.row_groups.append(_moved(group, shift, ordinal=len(self.row_groups)))
            self.rows += _value(footer.fields, _FILE_NUM_ROWS, 0)
            copy_bytes(part, self.handle, len(MAGIC), footer.start - len(MAGIC))
            self.position += footer.start - len(MAGIC)

    def close(self) -> None:
        """Write the footer listing every row group; the handle stays open."""
        if self.footer is None:
            raise DataError("no Parquet part was written")
        footer = _replaced(self.footer, _FILE_NUM_ROWS, _I64, self.rows)
        footer = _replaced(footer, _FILE_ROW_GROUPS, _LIST, (_STRUCT, self.row_groups))
        encoded = bytearray()
        _write_struct(encoded, footer)
        self.handle.write(encoded)
        self.handle.write(len(encoded).to_bytes(4, "little"))
        self.handle.write(MAGIC)


def _moved(group: list[Field], shift: int, *, ordinal: int) -> list[Field]:
    """A row group's metadata with every file offset moved by ``shift``."""
    moved: list[Field] = []
    for field_id, kind, value in group:
        if field_id == _GROUP_FILE_OFFSET:
            value = _moved_offset(value, shift)
        elif field_id == _GROUP_ORDINAL:
            value = ordinal
        elif field_id == _GROUP_COLUMNS:
            value = (value[0], [_moved_chunk(chunk, shift) for chunk in value[1]])
        moved.append((field_id, kind, value))
    return moved


def _moved_chunk(chunk: list[Field], shift: int) -> list[Field]:
    moved: list[Field] = []
    for field_id, kind, value in chunk:
        if field_id == _CHUNK_FILE_PATH:
            raise DataError("a scored partition refers to another file")
        if field_id == _CHUNK_FILE_OFFSET or field_id in _CHUNK_OFFSETS:
            value = _moved_offset(value, shift)
        elif field_id == _CHUNK_META:
            value = [
                (inner_id, inner_kind, _moved_offset(inner, shift))
                if inner_id in _META_OFFSETS
                else (inner_id, inner_kind, inner)
                for inner_id, inner_kind, inner in value
            ]
        moved.append((field_id, kind, value))
    return moved


def _moved_offset(offset: int, shift: int) -> int:
    # Offset 0 is the magic, never data: writers put 0 in a deprecated offset they leave
    # unset (parquet-cpp does in ColumnChunk.file_offset), and it must stay 0.
    return offset + shift if offset > 0 else offset


def _value(fields: list[Field], field_id: int, default: Any) -> Any:
    return next((value for found, _kind, value in fields if found == field_id), default)


def _replaced(fields: list[Field], field_id: int, kind: int, value: Any) -> list[Field]:
    kept = [field for field in fields if field[0] != field_id]
    return sorted([*kept, (field_id, kind, value)], key=lambda field: field[0])


# --- Thrift compact protocol -------------------------------------------------------------


def _read_varint(data: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, position
        shift += 7


def _read_zigzag(data: bytes, position: int) -> tuple[int, int]:
    number, position = _read_varint(data, position)
    return (number >> 1) ^ -(number & 1), position


def _read_struct(data: bytes, position: int) -> tuple[list[Field], int]:
    fields: list[Field] = []
    last = 0
    while True:
        header = data[position]
        position += 1
        if header == 0:
            return fields, position
        kind, delta = header & 0x0F, header >> 4
        if delta:
            field_id = last + delta
        else:
            field_id, position = _read_zigzag(data, position)
        if kind in (_TRUE, _FALSE):
            fields.append((field_id, _TRUE, kind == _TRUE))
        else:
            value, position = _read_value(data, position, kind)
            fields.append((field_id, kind, value))
        last = field_id


def _read_value(data: bytes, position: int, kind: int) -> tuple[Any, int]:
    if kind in (_TRUE, _FALSE):  # an element of a list: one byte
        return data[position] == _TRUE, position + 1
    if kind == _BYTE:
        return struct.unpack_from("<b", data, position)[0], position + 1
    if kind in (_I16, _I32, _I64):
        return _read_zigzag(data, position)
    if kind == _DOUBLE:
        return struct.unpack_from("<d", data, position)[0], position + 8
    if kind == _BINARY:
        length, position = _read_varint(data, position)
        return bytes(data[position : position + length]), position + length
    if kind in (_LIST, _SET):
        header = data[position]
        position += 1
        size, element = header >> 4, header & 0x0F
        if size == 15:
            size, position = _read_varint(data, position)
        items = []
        for _ in range(size):
            item, position = _read_value(data, position, element)
            items.append(item)
        return (element, items), position
    if kind == _MAP:
        size, position = _read_varint(data, position)
        if size == 0:
            return (0, 0, []), position
        key_kind, value_kind = data[position] >> 4, data[position] & 0x0F
        position += 1
        pairs = []
        for _ in range(size):
            key, position = _read_value(data, position, key_kind)
            item, position = _read_value(data, position, value_kind)
            pairs.append((key, item))
        return (key_kind, value_kind, pairs), position
    if kind == _STRUCT:
        return _read_struct(data, position)
    raise DataError(f"unknown Thrift type {kind} in a Parquet footer")


def _write_varint(out: bytearray, number: int) -> None:
    while number >= 0x80:
        out.append(number & 0x7F | 0x80)
        number >>= 7
    out.append(number)


def _write_zigzag(out: bytearray, number: int) -> None:
    _write_varint(out, (number << 1) ^ (number >> 63))


def _write_struct(out: bytearray, fields: list[Field]) -> None:
    last = 0
    for field_id, kind, value in fields:
        wire = (_TRUE if value else _FALSE) if kind == _TRUE else kind
        if 0 < field_id - last <= 15:
            out.append((field_id - last) << 4 | wire)
        else:
            out.append(wire)
            _write_zigzag(out, field_id)
        if kind != _TRUE:
            _write_value(out, kind, value)
        last = field_id
    out.append(0)


def _write_value(out: bytearray, kind: int, value: Any) -> None:
    if kind in (_TRUE, _FALSE):
        out.append(_TRUE if value else _FALSE)
    elif kind == _BYTE:
        out += struct.pack("<b", value)
    elif kind in (_I16, _I32, _I64):
        _write_zigzag(out, value)
    elif kind == _DOUBLE:
        out += struct.pack("<d", value)
    elif kind == _BINARY:
        _write_varint(out, len(value))
        out += value
    elif kind in (_LIST, _SET):
        element, items = value
        if len(items) < 15:
            out.append(len(items) << 4 | element)
        else:
            out.append(0xF0 | element)
            _write_varint(out, len(items))
        for item in items:
            _write_value(out, element, item)
    elif kind == _MAP:
        key_kind, value_kind, pairs = value
        _write_varint(out, len(pairs))
        if pairs:
            out.append(key_kind << 4 | value_kind)
        for key, item in pairs:
            _write_value(out, key_kind, key)
            _write_value(out, value_kind, item)
    else:
        _write_struct(out, value)
