"""How ``joblib.load`` reads an array: the wrapper's description, and the bytes that follow.

joblib pickles a ``NumpyArrayWrapper`` (shape, order, dtype, alignment) in place of each
array and writes the array right after the wrapper's BUILD: its raw bytes (after a padding
byte and padding, since joblib 1.2), or for object arrays a nested pickle. A scan must skip
exactly as many bytes as joblib reads, so the description is read as joblib would read it,
and a dtype whose sources disagree (type string, item size, flags, fields) is refused.
"""

from __future__ import annotations

import re
from typing import TypeGuard

from tabops.model.pickle_stream import BrokenPickleError
from tabops.model.pickle_values import Built, DictValue, GlobalRef, is_global

JOBLIB_WRAPPER = ("joblib.numpy_pickle", "NumpyArrayWrapper")
_RECONSTRUCTOR = ("copyreg", "_reconstructor")
_NUMPY_DTYPE = ("numpy", "dtype")
_TYPESTR = re.compile(r"([biufcmMOSUV])(\d+)\Z")
_MAX_DTYPE_DEPTH = 32


def is_joblib_wrapper(value: object) -> TypeGuard[Built]:
    """Whether ``value`` is a ``NumpyArrayWrapper`` (joblib reads an array after its BUILD)."""
    if not isinstance(value, Built):
        return False
    factory = value.factory
    if isinstance(factory, GlobalRef) and factory.pair == JOBLIB_WRAPPER:
        return True
    if isinstance(factory, GlobalRef) and factory.pair == _RECONSTRUCTOR:
        args = value.args
        return isinstance(args, tuple) and bool(args) and is_global(args[0], JOBLIB_WRAPPER)
    return False


_WRAPPER_PARAMETERS = ("subclass", "shape", "order", "dtype", "allow_mmap")


def set_wrapper_attributes(wrapper: Built, state: object) -> None:
    """The wrapper's attributes after this BUILD, as ``pickle``'s ``load_build`` sets them."""
    if (
        not wrapper.attributes
        and wrapper.initialised
        and is_global(wrapper.factory, JOBLIB_WRAPPER)
    ):
        args = wrapper.args
        if not isinstance(args, tuple) or not 4 <= len(args) <= 6:
            raise BrokenPickleError("a joblib array wrapper made with unusual arguments")
        names = (*_WRAPPER_PARAMETERS, "numpy_array_alignment_bytes")
        wrapper.attributes.update({"allow_mmap": False, "numpy_array_alignment_bytes": 16})
        wrapper.attributes.update(zip(names, args, strict=False))
    slots: object = None
    if isinstance(state, tuple) and len(state) == 2:
        state, slots = state
    for part in (state, slots):
        if part is None:
            continue
        if not isinstance(part, DictValue) or not part.complete:
            raise BrokenPickleError("a joblib array wrapper with a state the scan cannot read")
        for key, value in part.pairs:
            if not isinstance(key, str | bytes | int | float | None):
                raise BrokenPickleError("a joblib array wrapper with a computed attribute")
            if isinstance(key, str):
                wrapper.attributes[key] = value


def _element_count(shape: object) -> int:
    """The number of items of an array of ``shape``."""
    if not isinstance(shape, tuple) or not all(type(size) is int for size in shape):
        raise BrokenPickleError("a joblib array whose shape is not a tuple of integers")
    count = 1
    for size in shape:
        if size < 0:
            raise BrokenPickleError("a joblib array of negative size")
        count *= size
    return count


def _dtype_layout(dtype: object, depth: int) -> tuple[int, bool]:
    """Item size and whether items are objects, for dtypes as numpy pickles them.

    Every source numpy could read either from (the type string, the state's item size and
    flags, the fields) must agree; a dtype where they differ is refused, not guessed.
    """
    if depth > _MAX_DTYPE_DEPTH:
        raise BrokenPickleError("a dtype nested too deeply")
    if not (
        isinstance(dtype, Built)
        and dtype.initialised
        and is_global(dtype.factory, _NUMPY_DTYPE)
        and isinstance(dtype.args, tuple)
        and dtype.args
        and isinstance(dtype.args[0], str)
    ):
        raise BrokenPickleError("a joblib array whose dtype the scan cannot read")
    match = _TYPESTR.match(dtype.args[0])
    if match is None:
        raise BrokenPickleError(f"a joblib array of dtype {dtype.args[0]!r}")
    kind, digits = match.group(1), int(match.group(2))
    itemsize = digits * 4 if kind == "U" else digits
    has_object = kind == "O"
    state = dtype.state
    if state is None:
        return itemsize, has_object
    if not (isinstance(state, tuple) and len(state) in (8, 9) and state[2] is None):
        raise BrokenPickleError("a joblib array with an unusual dtype state")
    names, fields, elsize, flags = state[3], state[4], state[5], state[7]
    if type(elsize) is not int or type(flags) is not int:
        raise BrokenPickleError("a joblib array with an unusual dtype state")
    if kind == "V" and names is not None:
        has_object = _fields_have_objects(names, fields, depth)
    elif names is not None or fields is not None:
        raise BrokenPickleError("a joblib array with an unusual dtype state")
    expected_elsize = itemsize if kind in "SUV" else -1
    if elsize != expected_elsize or bool(flags & 1) != has_object:
        raise BrokenPickleError("a joblib array whose dtype contradicts itself")
    return itemsize, has_object


def _fields_have_objects(names: object, fields: object, depth: int) -> bool:
    if not (isinstance(names, tuple) and isinstance(fields, DictValue) and fields.complete):
        raise BrokenPickleError("a joblib array with unusual structured fields")
    has_object = False
    for _name, field in fields.pairs:
        if not isinstance(field, tuple) or len(field) not in (2, 3):
            raise BrokenPickleError("a joblib array with unusual structured fields")
        has_object = _dtype_layout(field[0], depth + 1)[1] or has_object
    return has_object


def array_layout(wrapper: Built) -> tuple[int, bool]:
    """How many bytes of array follow the wrapper, and whether they are a nested pickle.

    Raises:
        BrokenPickleError: the description is not one joblib writes, or contradicts itself.
    """
    attributes = wrapper.attributes
    if "dtype" not in attributes or "shape" not in attributes:
        raise BrokenPickleError("a joblib array without its dtype or shape")
    itemsize, has_object = _dtype_layout(attributes["dtype"], 0)
    count = _element_count(attributes["shape"])
    if not has_object and itemsize == 0:
        raise BrokenPickleError("a joblib array of zero-sized items")
    return count * itemsize, has_object


def has_padding(wrapper: Built) -> bool:
    """Whether a padding byte (joblib 1.2 and later) precedes the array's bytes."""
    return wrapper.attributes.get("numpy_array_alignment_bytes") is not None
