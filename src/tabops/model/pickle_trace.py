"""A symbolic unpickler: follows a pickle's opcodes to learn what it would import, running none.

The machine keeps the loader's stack, memo and marks, but its values are inert records of how
the loader would build them (``pickle_values``), so a ``STACK_GLOBAL`` whose module and name
come from earlier strings, through the memo or not, is read exactly. Bytes are read as the
pure-Python loader reads them, frames included (``pickle_stream``), and after the BUILD of a
joblib ``NumpyArrayWrapper`` the array's bytes are skipped, or its nested pickle scanned, as
``joblib.load`` would read them (``joblib_arrays``). Whatever the machine cannot follow
exactly stops the scan instead of being guessed.
"""

from __future__ import annotations

import _compat_pickle
import codecs
import pickle
import struct
from collections.abc import Callable

from tabops.model.joblib_arrays import (
    JOBLIB_WRAPPER,
    array_layout,
    has_padding,
    is_joblib_wrapper,
    set_wrapper_attributes,
)
from tabops.model.pickle_stream import (
    MAX_INLINE_BYTES,
    BrokenPickleError,
    ByteStream,
    PickleSource,
)
from tabops.model.pickle_values import MAX_ITEMS, Built, DictValue, GlobalRef, ListValue, Opaque

_INT4 = struct.Struct("<i")
_UINT2 = struct.Struct("<H")
_UINT4 = struct.Struct("<I")
_UINT8 = struct.Struct("<Q")

__all__ = [
    "JOBLIB_WRAPPER",
    "BrokenPickleError",
    "ByteStream",
    "Findings",
    "Machine",
    "trace_stream",
]


class Findings:
    """What a scan found: every ``(module, name)`` imported, and what cannot be named so."""

    def __init__(self) -> None:
        self.pairs: set[tuple[str, str]] = set()
        self.oddities: set[str] = set()


def _text(data: bytes | None, encoding: str = "utf-8") -> str:
    if data is None:
        raise BrokenPickleError("a global's name is longer than any real module's")
    return data.decode(encoding)


class Machine:
    """Runs one pickle stream symbolically, adding what it would import to ``findings``.

    With ``joblib`` set, the BUILD of a ``NumpyArrayWrapper`` is followed by the array's
    bytes, as ``joblib.load`` reads them; a nested stream (an object array's) is plain, and
    names its globals as its ``outer`` stream would, since joblib hands the nested loader
    the outer loader's ``find_class``.
    """

    def __init__(
        self,
        source: PickleSource,
        findings: Findings,
        *,
        joblib: bool,
        outer: Machine | None = None,
    ) -> None:
        self._source = source
        self._naming = self if outer is None else outer
        self._findings = findings
        self._joblib = joblib
        self._stack: list[object] = []
        self._metastack: list[list[object]] = []
        self._memo: dict[int, object] = {}
        self._proto = 0
        self._dispatch: dict[int, Callable[[], None]] = {}
        for name in dir(self):
            if name.startswith("_op_"):
                code: bytes = getattr(pickle, name[4:])
                self._dispatch[code[0]] = getattr(self, name)

    def run(self) -> object:
        """Follow opcodes up to STOP; return the (inert) value the stream builds."""
        read_byte = self._source.read_byte
        dispatch = self._dispatch
        stop = pickle.STOP[0]
        while True:
            code = read_byte()
            if code == stop:
                return self._pop()
            handler = dispatch.get(code)
            if handler is None:
                raise BrokenPickleError(f"unknown opcode {code:#04x}")
            handler()

    # -- the stack ------------------------------------------------------------------------

    def _pop(self) -> object:
        if not self._stack:
            raise BrokenPickleError("the stack runs empty")
        return self._stack.pop()

    def _top(self) -> object:
        if not self._stack:
            raise BrokenPickleError("the stack runs empty")
        return self._stack[-1]

    def _pop_mark(self) -> list[object]:
        if not self._metastack:
            raise BrokenPickleError("no MARK to return to")
        items = self._stack
        self._stack = self._metastack.pop()
        return items

    def _unpack(self, codec: struct.Struct) -> int:
        value: int = codec.unpack(self._source.read(codec.size))[0]
        return value

    def _line(self) -> bytes:
        line = self._source.readline()
        if line is None:
            raise BrokenPickleError("a numeric line longer than any number pickle writes")
        return line

    def _bytes(self, size: int) -> bytes | Opaque:
        if size < 0:
            raise BrokenPickleError("a negative byte count")
        if size > MAX_INLINE_BYTES:
            self._source.skip(size)
            return Opaque()
        return self._source.read(size)

    def _string(self, size: int, encoding: str) -> str | Opaque:
        data = self._bytes(size)
        if isinstance(data, Opaque):
            return data
        if encoding == "ascii":
            return data.decode("ascii")
        return data.decode("utf-8", "surrogatepass")

    # -- framing, protocol, stop ----------------------------------------------------------

    def _op_PROTO(self) -> None:
        proto = self._source.read_byte()
        if proto > pickle.HIGHEST_PROTOCOL:
            raise BrokenPickleError(f"pickle protocol {proto} is newer than this Python's")
        self._proto = proto

    def _op_FRAME(self) -> None:
        self._source.load_frame(self._unpack(_UINT8))

    # -- plain values ---------------------------------------------------------------------

    def _op_NONE(self) -> None:
        self._stack.append(None)

    def _op_NEWTRUE(self) -> None:
        self._stack.append(True)

    def _op_NEWFALSE(self) -> None:
        self._stack.append(False)

    def _op_INT(self) -> None:
        line = self._line()
        if line in (b"00", b"01"):
            self._stack.append(line == b"01")
        else:
            self._stack.append(int(line, 0))

    def _op_BININT(self) -> None:
        self._stack.append(_INT4.unpack(self._source.read(4))[0])

    def _op_BININT1(self) -> None:
        self._stack.append(self._source.read_byte())

    def _op_BININT2(self) -> None:
        self._stack.append(_UINT2.unpack(self._source.read(2))[0])

    def _op_LONG(self) -> None:
        line = self._line()
        self._stack.append(int(line[:-1] if line.endswith(b"L") else line, 0))

    def _long(self, size: int) -> None:
        data = self._bytes(size)
        if isinstance(data, Opaque):
            self._stack.append(data)
        else:
            self._stack.append(int.from_bytes(data, "little", signed=True))

    def _op_LONG1(self) -> None:
        self._long(self._source.read_byte())

    def _op_LONG4(self) -> None:
        self._long(self._unpack(_INT4))

    def _op_FLOAT(self) -> None:
        self._stack.append(float(self._line()))

    def _op_BINFLOAT(self) -> None:
        self._stack.append(float(struct.unpack(">d", self._source.read(8))[0]))

    def _op_STRING(self) -> None:
        line = self._line()
        if len(line) < 2 or line[0] != line[-1] or line[:1] not in (b'"', b"'"):
            raise BrokenPickleError("a STRING argument without quotes")
        self._stack.append(codecs.escape_decode(line[1:-1])[0].decode("ascii"))

    def _op_BINSTRING(self) -> None:
        self._stack.append(self._string(self._unpack(_INT4), "ascii"))

    def _op_SHORT_BINSTRING(self) -> None:
        self._stack.append(self._string(self._source.read_byte(), "ascii"))

    def _op_BINBYTES(self) -> None:
        self._stack.append(self._bytes(self._unpack(_UINT4)))

    def _op_SHORT_BINBYTES(self) -> None:
        self._stack.append(self._bytes(self._source.read_byte()))

    def _op_BINBYTES8(self) -> None:
        self._stack.append(self._bytes(self._unpack(_UINT8)))

    def _op_BYTEARRAY8(self) -> None:
        self._bytes(self._unpack(_UINT8))
        self._stack.append(Opaque())

    def _op_NEXT_BUFFER(self) -> None:
        raise BrokenPickleError("the pickle refers to out-of-band buffers it does not hold")

    def _op_READONLY_BUFFER(self) -> None:
        self._top()

    def _op_UNICODE(self) -> None:
        line = self._source.readline()
        self._stack.append(Opaque() if line is None else str(line, "raw-unicode-escape"))

    def _op_SHORT_BINUNICODE(self) -> None:
        source = self._source
        self._stack.append(source.read(source.read_byte()).decode("utf-8", "surrogatepass"))

    def _op_BINUNICODE(self) -> None:
        self._stack.append(self._string(self._unpack(_UINT4), "utf-8"))

    def _op_BINUNICODE8(self) -> None:
        self._stack.append(self._string(self._unpack(_UINT8), "utf-8"))

    # -- containers -----------------------------------------------------------------------

    def _op_MARK(self) -> None:
        self._metastack.append(self._stack)
        self._stack = []

    def _op_POP_MARK(self) -> None:
        self._pop_mark()

    def _op_POP(self) -> None:
        if self._stack:
            self._stack.pop()
        else:
            self._pop_mark()

    def _op_DUP(self) -> None:
        self._stack.append(self._top())

    def _op_EMPTY_TUPLE(self) -> None:
        self._stack.append(())

    def _op_TUPLE(self) -> None:
        items = self._pop_mark()
        self._stack.append(tuple(items) if len(items) <= MAX_ITEMS else Opaque())

    def _op_TUPLE1(self) -> None:
        self._stack.append((self._pop(),))

    def _op_TUPLE2(self) -> None:
        second = self._pop()
        self._stack.append((self._pop(), second))

    def _op_TUPLE3(self) -> None:
        third = self._pop()
        second = self._pop()
        self._stack.append((self._pop(), second, third))

    def _op_EMPTY_LIST(self) -> None:
        self._stack.append(ListValue())

    def _op_LIST(self) -> None:
        items = self._pop_mark()
        self._stack.append(ListValue(items))

    def _op_APPEND(self) -> None:
        value = self._pop()
        target = self._top()
        if isinstance(target, ListValue):
            target.extend([value])

    def _op_APPENDS(self) -> None:
        items = self._pop_mark()
        target = self._top()
        if isinstance(target, ListValue):
            target.extend(items)

    def _op_EMPTY_DICT(self) -> None:
        self._stack.append(DictValue())

    def _op_DICT(self) -> None:
        result = DictValue()
        result.update(self._pop_mark())
        self._stack.append(result)

    def _op_SETITEM(self) -> None:
        value = self._pop()
        key = self._pop()
        target = self._top()
        if isinstance(target, DictValue):
            target.update([key, value])

    def _op_SETITEMS(self) -> None:
        items = self._pop_mark()
        target = self._top()
        if isinstance(target, DictValue):
            target.update(items)
        elif len(items) % 2:
            raise BrokenPickleError("SETITEMS with an odd number of items")

    def _op_EMPTY_SET(self) -> None:
        self._stack.append(Opaque())

    def _op_ADDITEMS(self) -> None:
        self._pop_mark()
        self._top()

    def _op_FROZENSET(self) -> None:
        self._pop_mark()
        self._stack.append(Opaque())

    # -- the memo -------------------------------------------------------------------------

    def _get(self, index: int) -> None:
        if index not in self._memo:
            raise BrokenPickleError(f"memo entry {index} is read before it is written")
        self._stack.append(self._memo[index])

    def _put(self, index: int) -> None:
        if index < 0:
            raise BrokenPickleError("a negative memo index")
        self._memo[index] = self._top()

    def _op_GET(self) -> None:
        self._get(int(self._line()))

    def _op_BINGET(self) -> None:
        index = self._source.read_byte()
        if index not in self._memo:
            raise BrokenPickleError(f"memo entry {index} is read before it is written")
        self._stack.append(self._memo[index])

    def _op_LONG_BINGET(self) -> None:
        self._get(self._unpack(_UINT4))

    def _op_PUT(self) -> None:
        self._put(int(self._line()))

    def _op_BINPUT(self) -> None:
        self._put(self._source.read_byte())

    def _op_LONG_BINPUT(self) -> None:
        self._put(self._unpack(_UINT4))

    def _op_MEMOIZE(self) -> None:
        if not self._stack:
            raise BrokenPickleError("the stack runs empty")
        self._memo[len(self._memo)] = self._stack[-1]

    # -- what names or calls code ---------------------------------------------------------

    def _find(self, module: str, name: str) -> GlobalRef:
        # The loader's fix_imports: protocols 0-2 may spell Python 2 names.
        if self._naming._proto < 3:
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
        self._findings.pairs.add((module, name))
        return GlobalRef(module, name)

    def _op_GLOBAL(self) -> None:
        module = _text(self._source.readline())
        self._stack.append(self._find(module, _text(self._source.readline())))

    def _op_STACK_GLOBAL(self) -> None:
        name = self._pop()
        module = self._pop()
        if type(module) is str and type(name) is str:
            self._stack.append(self._find(module, name))
        else:
            self._findings.oddities.add("<STACK_GLOBAL with a computed name>")
            self._stack.append(Opaque())

    def _op_INST(self) -> None:
        module = _text(self._source.readline(), "ascii")
        factory = self._find(module, _text(self._source.readline(), "ascii"))
        args = self._pop_mark()
        self._stack.append(Built(factory, tuple(args), initialised=bool(args)))

    def _op_OBJ(self) -> None:
        args = self._pop_mark()
        if not args:
            raise BrokenPickleError("OBJ without a class")
        self._stack.append(Built(args[0], tuple(args[1:]), initialised=len(args) > 1))

    def _op_NEWOBJ(self) -> None:
        args = self._pop()
        self._stack.append(Built(self._pop(), args, initialised=False))

    def _op_NEWOBJ_EX(self) -> None:
        self._pop()
        args = self._pop()
        self._stack.append(Built(self._pop(), args, initialised=False))

    def _op_REDUCE(self) -> None:
        args = self._pop()
        factory = self._pop()
        self._stack.append(Built(factory, args, initialised=True))

    def _extension(self, code: int) -> None:
        self._findings.oddities.add(f"<copyreg extension code {code}>")
        self._stack.append(Opaque())

    def _op_EXT1(self) -> None:
        self._extension(self._source.read_byte())

    def _op_EXT2(self) -> None:
        self._extension(self._unpack(_UINT2))

    def _op_EXT4(self) -> None:
        self._extension(self._unpack(_INT4))

    def _op_PERSID(self) -> None:
        self._source.readline()
        self._findings.oddities.add("<persistent id>")
        self._stack.append(Opaque())

    def _op_BINPERSID(self) -> None:
        self._pop()
        self._findings.oddities.add("<persistent id>")
        self._stack.append(Opaque())

    def _op_BUILD(self) -> None:
        state = self._pop()
        target = self._top()
        if isinstance(target, GlobalRef):
            self._findings.oddities.add(f"<state set on {target.module}.{target.name}>")
        elif self._joblib and is_joblib_wrapper(target):
            set_wrapper_attributes(target, state)
            self._read_joblib_array(target)
            self._stack[-1] = Opaque()
        elif isinstance(target, Built):
            target.state = state

    def _read_joblib_array(self, wrapper: Built) -> None:
        size, nested = array_layout(wrapper)
        if nested:
            # An object array is a nested pickle, read by a fresh plain unpickler.
            Machine(self._source.nested(), self._findings, joblib=False, outer=self).run()
            return
        if has_padding(wrapper):
            self._source.read_raw_padding()
        self._source.skip_raw(size)


def trace_stream(file: ByteStream, size: int | None, findings: Findings) -> None:
    """Follow one top-level pickle stream (joblib arrays included) to its STOP.

    ``size`` is the stream's length when the file can seek over skipped bytes.

    Raises:
        BrokenPickleError: the stream is not one the loader could read, or not one the
            scan can follow exactly.
    """
    Machine(PickleSource(file, size), findings, joblib=True).run()
