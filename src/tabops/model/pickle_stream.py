"""The bytes of a pickle as its loader reads them: from the file, or from a protocol-4 frame.

The pure-Python unpickler (which ``joblib.load`` uses) reads opcodes through an "unframer":
inside a frame, from the frame's buffer; past it, from the file. joblib reads each array's
raw bytes from the file itself. ``PickleSource`` mirrors both, so a scan reads what the
loader reads, in the same order.
"""

from __future__ import annotations

import io
from typing import Protocol

MAX_INLINE_BYTES = 1 << 16
"""Strings and bytes longer than this are skipped, not kept: no module name is that long."""
MAX_FRAME_BYTES = 1 << 24
"""Protocol-4 frames hold about 64 KiB; a larger one is refused rather than held in memory."""
_SKIP_CHUNK = 1 << 20
_AHEAD_CHUNK = 1 << 16


class ByteStream(Protocol):
    """A readable binary file: a plain file, or a decompressing one."""

    def read(self, size: int = ..., /) -> bytes:
        """Up to ``size`` bytes; fewer only at the end."""

    def readline(self, size: int = ..., /) -> bytes:
        """Bytes up to a newline (kept), at most ``size``."""

    def seek(self, offset: int, whence: int = ..., /) -> int:
        """Move the position."""

    def tell(self) -> int:
        """The position."""


class BrokenPickleError(Exception):
    """The bytes are not a pickle the loader could read, or not one the scan can follow."""


class _AheadFile:
    """The file, read ahead in chunks: one ``read`` call per chunk rather than per opcode.

    Every source of one file shares it, so a nested stream (an object array's) goes on
    where the outer one stopped, and the outer one where the nested one stopped.
    """

    def __init__(self, file: ByteStream, size: int | None) -> None:
        self._file = file
        self._size = size
        self._buffer = b""
        self._position = 0

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes; fewer only at the end of the file."""
        end = self._position + size
        if end <= len(self._buffer):
            data = self._buffer[self._position : end]
            self._position = end
            return data
        data = self._buffer[self._position :]
        self._buffer, self._position = b"", 0
        missing = size - len(data)
        if missing >= _AHEAD_CHUNK:
            return data + self._file.read(missing)
        self._buffer = self._file.read(_AHEAD_CHUNK)
        self._position = min(missing, len(self._buffer))
        return data + self._buffer[: self._position]

    def readline(self, limit: int) -> bytes:
        """Bytes up to and including a newline, at most ``limit``; fewer at the end."""
        parts: list[bytes] = []
        length = 0
        while length < limit:
            end = self._buffer.find(b"\n", self._position, self._position + limit - length)
            if end >= 0:
                parts.append(self._buffer[self._position : end + 1])
                self._position = end + 1
                break
            part = self._buffer[self._position : self._position + limit - length]
            parts.append(part)
            length += len(part)
            self._position += len(part)
            if length < limit:
                self._buffer, self._position = self._file.read(_AHEAD_CHUNK), 0
                if not self._buffer:
                    break
        return b"".join(parts)

    def skip(self, size: int) -> None:
        """Pass over ``size`` bytes; ``BrokenPickleError`` when the file is shorter."""
        buffered = min(size, len(self._buffer) - self._position)
        self._position += buffered
        size -= buffered
        if size == 0:
            return
        self._buffer, self._position = b"", 0
        if self._size is not None:
            if self._file.tell() + size > self._size:
                raise BrokenPickleError("the file ends early (truncated)")
            self._file.seek(size, io.SEEK_CUR)
            return
        while size > 0:
            step = min(size, _SKIP_CHUNK)
            if len(self._file.read(step)) < step:
                raise BrokenPickleError("the file ends early (truncated)")
            size -= step


class PickleSource:
    """The loader's view of the bytes: the file, and the protocol-4 frame being read."""

    def __init__(self, file: ByteStream | _AheadFile, size: int | None = None) -> None:
        self._file = file if isinstance(file, _AheadFile) else _AheadFile(file, size)
        self._frame: bytes | None = None
        self._frame_position = 0

    def nested(self) -> PickleSource:
        """A source for a pickle stream that starts where the file is now (frames apart)."""
        return PickleSource(self._file)

    def read_byte(self) -> int:
        """One byte, as a number (an opcode, or a one-byte argument)."""
        frame = self._frame
        if frame is not None and self._frame_position < len(frame):
            self._frame_position += 1
            return frame[self._frame_position - 1]
        return self.read(1)[0]

    def read(self, size: int) -> bytes:
        """``size`` bytes, from the frame while one is open."""
        frame = self._frame
        if frame is not None:
            start = self._frame_position
            end = start + size
            if end <= len(frame):
                self._frame_position = end
                return frame[start:end]
            if start < len(frame):
                raise BrokenPickleError("an opcode runs past the end of its frame")
            self._frame = None
        return self.read_raw(size)

    def skip(self, size: int) -> None:
        """Pass over ``size`` bytes as ``read`` would read them."""
        frame = self._frame
        if frame is not None:
            if self._frame_position + size <= len(frame):
                self._frame_position += size
                return
            if self._frame_position < len(frame):
                raise BrokenPickleError("an opcode runs past the end of its frame")
            self._frame = None
        self.skip_raw(size)

    def readline(self) -> bytes | None:
        """One line without its newline; None when longer than ``MAX_INLINE_BYTES``."""
        frame = self._frame
        if frame is not None:
            start = self._frame_position
            if start < len(frame):
                end = frame.find(b"\n", start)
                if end < 0:
                    raise BrokenPickleError("a line runs past the end of its frame")
                self._frame_position = end + 1
                return frame[start:end] if end - start <= MAX_INLINE_BYTES else None
            self._frame = None
        data = self._file.readline(MAX_INLINE_BYTES + 1)
        if data.endswith(b"\n"):
            return data[:-1]
        if len(data) <= MAX_INLINE_BYTES:
            raise BrokenPickleError("the file ends inside a line")
        while not data.endswith(b"\n"):
            data = self._file.readline(_SKIP_CHUNK)
            if not data:
                raise BrokenPickleError("the file ends inside a line")
        return None

    def load_frame(self, size: int) -> None:
        """Open a frame of the next ``size`` bytes of the file."""
        if size > MAX_FRAME_BYTES:
            raise BrokenPickleError(f"a frame of {size} bytes, far beyond what picklers write")
        if self._frame is not None and self._frame_position < len(self._frame):
            raise BrokenPickleError("a new frame starts before the current one ends")
        self._frame = self.read_raw(size)
        self._frame_position = 0

    def read_raw(self, size: int) -> bytes:
        """Bytes straight from the file, as joblib reads an array's (no frame)."""
        data = self._file.read(size)
        if len(data) < size:
            raise BrokenPickleError("the file ends early (truncated)")
        return data

    def read_raw_padding(self) -> int:
        """Skip the padding joblib writes before an array: a length byte, then that many."""
        length = self._file.read(1)
        if length and length[0]:
            self._file.read(length[0])
        return length[0] if length else 0

    def skip_raw(self, size: int) -> None:
        """Pass over ``size`` bytes of the file itself (an array's, for joblib)."""
        self._file.skip(size)
