"""One Parquet file from Parquet parts written in parallel, by copying bytes, not re-encoding.

A Parquet file is ``PAR1``, the column chunks of its row groups (plus any page indexes and
bloom filters), a footer, the footer's length and ``PAR1``. The footer is a Thrift
compact-protocol ``FileMetaData`` whose row groups record absolute file offsets. Parts
written with one schema are joined by copying each part's body in order (``body``) and
writing one footer that lists every row group (``joined_footer``), its offsets moved by
where its part's bytes landed (``moved_row_groups``). The copies can be made by several
processes, each knowing where its part goes.

The Thrift codec below is generic (it keeps every field it reads, known or not), so a
footer it does not change is written back byte for byte; only offsets, ordinals and the
row count are edited.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from tabops.errors import DataError

MAGIC = b"PAR1"

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

    @property
    def row_groups(self) -> list[list[Field]]:
        """The row groups' metadata, in file order."""
        return list(_value(self.fields, _FILE_ROW_GROUPS, (_STRUCT, []))[1])


def read_footer(data: bytes, name: str) -> Footer:
    """The footer of a whole Parquet file held in ``data`` (``name`` is for messages).

    Raises:
        DataError: ``data`` is not a plain (unencrypted) Parquet file.
    """
    if len(data) < 12 or data[:4] != MAGIC or data[-4:] != MAGIC:
        raise DataError(f"{name} is not a Parquet file")
    length = int.from_bytes(data[-8:-4], "little")
    start = len(data) - 8 - length
    if start < len(MAGIC):
        raise DataError(f"{name} is not a Parquet file")
    fields, _end = _read_struct(data, start)
    return Footer(fields, start)


def body(data: bytes, footer: Footer) -> memoryview:
    """A Parquet file's bytes between its leading magic and its footer: its row groups."""
    return memoryview(data)[len(MAGIC) : footer.start]


def moved_row_groups(footer: Footer, position: int, first_ordinal: int) -> list[list[Field]]:
    """The file's row groups as they are once its body is copied to ``position`` of another.

    Ordinals are numbered on from ``first_ordinal`` (the row groups copied before it).
    """
    shift = position - len(MAGIC)  # the body started right after the part's magic
    return [
        _moved(group, shift, ordinal=first_ordinal + number)
        for number, group in enumerate(footer.row_groups)
    ]


def joined_footer(first: Footer, row_groups: list[list[Field]], rows: int) -> bytes:
    """The end of a joined file: its footer, the footer's length and the magic.

    The footer is ``first`` part's, listing every row group.
    """
    fields = _replaced(first.fields, _FILE_NUM_ROWS, _I64, rows)
    fields = _replaced(fields, _FILE_ROW_GROUPS, _LIST, (_STRUCT, row_groups))
    encoded = bytearray()
    _write_struct(encoded, fields)
    return bytes(encoded) + len(encoded).to_bytes(4, "little") + MAGIC


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
