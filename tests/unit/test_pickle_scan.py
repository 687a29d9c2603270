"""The pickle scan: what real model files import, and hostile files it must refuse unrun."""

from __future__ import annotations

import _compat_pickle
import contextlib
import os
import pickle
import pickletools
import random
import struct
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joblib.numpy_pickle import NumpyUnpickler

from foreign_models import DUMP_WAYS, FITTED_MODELS, dump_model
from tabops.errors import ModelImportError, UnsafeModelError
from tabops.model import pickle_trace
from tabops.model.pickle_allowlist import ALLOWED_GLOBALS
from tabops.model.pickle_scan import check_pickle, is_allowed_global, scan_pickle

MARKER = "scan-marker"
PAYLOAD_SECONDS = 60


class SystemCall:
    """Unpickling it runs ``os.system`` (spelt ``posix.system`` in the file)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class PopenCall:
    def __init__(self, argv: list[str]) -> None:
        self.argv = argv

    def __reduce__(self):
        return (subprocess.Popen, (self.argv,))


class EvalCall:
    def __init__(self, source: str) -> None:
        self.source = source

    def __reduce__(self):
        return (eval, (self.source,))


def touch(tmp_path: Path) -> str:
    return f"touch {tmp_path / MARKER}"


def load_in_subprocess(path: Path, loader: str, cwd: Path) -> None:
    """The positive control: the file really runs its payload when a plain loader opens it."""
    code = {
        "pickle": "import pickle, sys; pickle.load(open(sys.argv[1], 'rb'))",
        "joblib": "import joblib, sys; joblib.load(sys.argv[1])",
    }[loader]
    subprocess.run([sys.executable, "-c", code, str(path)], cwd=cwd, check=False)


# -- opcode assembly, for files no pickler writes --------------------------------------


def text(value: str) -> bytes:
    data = value.encode()
    return pickle.SHORT_BINUNICODE + bytes([len(data)]) + data


def small_int(value: int) -> bytes:
    return pickle.BININT1 + bytes([value])


def framed(body: bytes) -> bytes:
    return pickle.FRAME + struct.pack("<Q", len(body)) + body


F8_DTYPE = (
    text("numpy")
    + text("dtype")
    + pickle.STACK_GLOBAL
    + text("f8")
    + pickle.NEWFALSE
    + pickle.NEWTRUE
    + pickle.TUPLE3
    + pickle.REDUCE
    + pickle.MARK
    + small_int(3)
    + text("<")
    + pickle.NONE * 3
    + pickle.BININT
    + struct.pack("<i", -1)
    + pickle.BININT
    + struct.pack("<i", -1)
    + small_int(0)
    + pickle.TUPLE
    + pickle.BUILD
)


def joblib_wrapper(length: int, alignment: bool, dtype: bytes = F8_DTYPE) -> bytes:
    """A NumpyArrayWrapper of ``length`` items (float64), built as joblib builds one."""
    state = (
        pickle.EMPTY_DICT
        + pickle.MARK
        + text("subclass")
        + text("numpy")
        + text("ndarray")
        + pickle.STACK_GLOBAL
        + text("shape")
        + small_int(length)
        + pickle.TUPLE1
        + text("order")
        + text("C")
        + text("dtype")
        + dtype
        + text("allow_mmap")
        + pickle.NEWFALSE
        + text("numpy_array_alignment_bytes")
        + (small_int(16) if alignment else pickle.NONE)
        + pickle.SETITEMS
    )
    return (
        text("joblib.numpy_pickle")
        + text("NumpyArrayWrapper")
        + pickle.STACK_GLOBAL
        + pickle.EMPTY_TUPLE
        + pickle.NEWOBJ
        + state
        + pickle.BUILD
    )


def system_call(command: str) -> bytes:
    return (
        text("posix") + text("system") + pickle.STACK_GLOBAL + text(command) + pickle.TUPLE1
    ) + pickle.REDUCE


# -- real models -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "way", [*DUMP_WAYS, "pickle-0", "joblib-gzip", "joblib-bz2", "joblib-xz", "joblib-lzma"]
)
@pytest.mark.parametrize("name", sorted(FITTED_MODELS))
def test_scan_passes_real_fitted_models(tmp_path, name, way):
    model, _x, _y = FITTED_MODELS[name]()
    path = dump_model(model, tmp_path / "model.bin", way)
    scan = check_pickle(path, trust=False)
    assert scan.refused == ()
    assert scan.globals == tuple(sorted(set(scan.globals)))
    module = type(model).__module__
    assert f"{module}.{type(model).__qualname__}" in scan.globals
    if way.startswith("joblib-"):
        assert scan.format == f"joblib+{way.removeprefix('joblib-')}"
    elif way.startswith("pickle"):
        assert scan.format == "pickle"


def record_import(unpickler, module, name):
    """Note the global the loader imports (Python 2 names as it maps them)."""
    if unpickler.proto < 3 and (module, name) in _compat_pickle.NAME_MAPPING:
        unpickler.imported.add(".".join(_compat_pickle.NAME_MAPPING[(module, name)]))
    elif unpickler.proto < 3 and module in _compat_pickle.IMPORT_MAPPING:
        unpickler.imported.add(f"{_compat_pickle.IMPORT_MAPPING[module]}.{name}")
    else:
        unpickler.imported.add(f"{module}.{name}")
    return pickle._Unpickler.find_class(unpickler, module, name)


class RecordingUnpickler(pickle._Unpickler):
    """The real loader, noting every global it imports."""

    find_class = record_import


class RecordingJoblibUnpickler(NumpyUnpickler):
    find_class = record_import


@pytest.mark.parametrize("way", ["pickle-0", "pickle-2", "pickle-5", "joblib"])
@pytest.mark.parametrize("name", sorted(FITTED_MODELS))
def test_scan_names_exactly_what_the_loader_imports(tmp_path, name, way):
    model, _x, _y = FITTED_MODELS[name]()
    path = dump_model(model, tmp_path / "model.bin", way)
    with path.open("rb") as stream:
        if way == "joblib":
            loader = RecordingJoblibUnpickler(str(path), stream, ensure_native_byte_order=False)
        else:
            loader = RecordingUnpickler(stream)
        loader.imported = set()
        loader.load()
    assert set(scan_pickle(path).globals) == loader.imported


def test_scan_names_every_global_pickletools_sees(tmp_path):
    model, _x, _y = FITTED_MODELS["column_pipeline"]()
    path = dump_model(model, tmp_path / "model.pkl", "pickle-2")
    expected = {
        arg.replace(" ", ".").replace("__builtin__.", "builtins.")
        for opcode, arg, _ in pickletools.genops(path.read_bytes())
        if opcode.name == "GLOBAL"
    }
    assert set(scan_pickle(path).globals) == expected


def test_joblib_format_follows_arrays_to_the_end_of_the_file(tmp_path):
    arrays = {
        "floats": np.arange(1000.0).reshape(50, 20),
        "fortran": np.asfortranarray(np.ones((7, 3), dtype=np.int32)),
        "text": np.array(["a", "bb", "ccc"]),
        "bytes": np.array([b"x", b"yz"]),
        "flags": np.array([True, False]),
        "times": np.array(["2020-01-01"], dtype="datetime64[ns]"),
        "scalar": np.array(3.5),
        "empty": np.zeros((0, 4)),
        "objects": np.array([{"k": 1}, "two", 3], dtype=object),
        "structured": np.zeros(3, dtype=[("a", "f8"), ("b", "i2")]),
    }
    path = tmp_path / "arrays.joblib"
    joblib.dump([arrays, SystemCall("true")], path)
    scan = scan_pickle(path)
    assert scan.format == "joblib"
    # Found only after every array's bytes were skipped exactly.
    assert scan.refused == ("posix.system",)


# -- hostile files -----------------------------------------------------------------------


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_check_refuses_os_system_without_running_it(tmp_path, protocol):
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(SystemCall(touch(tmp_path)), protocol=protocol))
    with pytest.raises(UnsafeModelError) as caught:
        check_pickle(path, trust=False)
    assert caught.value.message.startswith("model.pkl would import posix.system; refusing")
    assert "--trust-pickle" in caught.value.message
    assert [problem.field for problem in caught.value.problems] == ["model"]
    assert "posix.system" in caught.value.problems[0].problem
    assert not (tmp_path / MARKER).exists()


def test_check_refuses_popen_and_eval(tmp_path):
    path = tmp_path / "model.pkl"
    path.write_bytes(
        pickle.dumps([PopenCall(["touch", str(tmp_path / MARKER)]), EvalCall("1 + 1")])
    )
    with pytest.raises(UnsafeModelError) as caught:
        check_pickle(path, trust=False)
    assert "builtins.eval, subprocess.Popen;" in caught.value.message
    assert not (tmp_path / MARKER).exists()


def test_trust_returns_the_scan_instead_of_refusing(tmp_path):
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(SystemCall(touch(tmp_path))))
    scan = check_pickle(path, trust=True)
    assert scan.refused == ("posix.system",)
    assert not (tmp_path / MARKER).exists()


def test_stack_global_spelt_through_the_memo_is_read(tmp_path):
    body = (
        text("posix")
        + pickle.MEMOIZE
        + pickle.POP
        + text("system")
        + pickle.BINPUT
        + b"\x07"
        + pickle.POP
        + pickle.BINGET
        + b"\x00"
        + pickle.BINGET
        + b"\x07"
        + pickle.STACK_GLOBAL
        + text(touch(tmp_path))
        + pickle.TUPLE1
        + pickle.REDUCE
        + pickle.STOP
    )
    path = tmp_path / "memo.pkl"
    path.write_bytes(pickle.PROTO + b"\x04" + framed(body))
    assert scan_pickle(path).refused == ("posix.system",)
    assert not (tmp_path / MARKER).exists()
    load_in_subprocess(path, "pickle", tmp_path)
    assert (tmp_path / MARKER).exists(), "the file should be a working attack"


def test_stack_global_with_a_computed_name_is_refused_as_such(tmp_path):
    computed = text("builtins") + text("str") + pickle.STACK_GLOBAL + text("posix") + pickle.TUPLE1
    body = computed + pickle.REDUCE + text("system") + pickle.STACK_GLOBAL + pickle.STOP
    path = tmp_path / "computed.pkl"
    path.write_bytes(pickle.PROTO + b"\x04" + body)
    assert scan_pickle(path).refused == ("<STACK_GLOBAL with a computed name>",)


@pytest.mark.parametrize(
    "source",
    [
        b"cposix\nsystem\n(S'touch {marker}'\ntR.",
        b"(S'touch {marker}'\niposix\nsystem\n.",
        b"ccopy_reg\n_reconstructor\n(c__builtin__\neval\nc__builtin__\nobject\nNtR.",
    ],
    ids=["GLOBAL", "INST", "python-2-names"],
)
def test_protocol_0_text_pickles_are_read(tmp_path, source):
    path = tmp_path / "text.pkl"
    path.write_bytes(source.replace(b"{marker}", str(tmp_path / MARKER).encode()))
    refused = scan_pickle(path).refused
    assert refused in (("posix.system",), ("builtins.eval",))
    assert not (tmp_path / MARKER).exists()


def test_protocol_0_payload_is_a_working_attack(tmp_path):
    path = tmp_path / "text.pkl"
    path.write_bytes(f"cposix\nsystem\n(S'{touch(tmp_path)}'\ntR.".encode())
    load_in_subprocess(path, "pickle", tmp_path)
    assert (tmp_path / MARKER).exists()


@pytest.mark.parametrize("compress", [0, 3, ("gzip", 3)])
def test_payload_after_joblib_arrays_is_found(tmp_path, compress):
    path = tmp_path / "model.joblib"
    joblib.dump(
        {"weights": np.arange(5000.0), "hook": SystemCall(touch(tmp_path))}, path, compress=compress
    )
    with pytest.raises(UnsafeModelError, match=r"posix\.system"):
        check_pickle(path, trust=False)
    assert not (tmp_path / MARKER).exists()


def test_payload_inside_an_object_array_is_found(tmp_path):
    path = tmp_path / "model.joblib"
    joblib.dump({"items": np.array([1, SystemCall(touch(tmp_path))], dtype=object)}, path)
    scan = scan_pickle(path)
    assert scan.refused == ("posix.system",)
    assert not (tmp_path / MARKER).exists()
    load_in_subprocess(path, "joblib", tmp_path)
    assert (tmp_path / MARKER).exists(), "the file should be a working attack"


@pytest.mark.parametrize("alignment", [True, False])
def test_array_bytes_are_read_after_the_frame_as_joblib_reads_them(tmp_path, alignment):
    # The wrapper's BUILD sits mid-frame: joblib reads the array from the file after the
    # frame, then goes on inside the frame, where the payload is. A scan skipping the bytes
    # at its own position would jump over the payload.
    body = joblib_wrapper(2, alignment) + pickle.POP + system_call(touch(tmp_path)) + pickle.STOP
    padding = b"\x0f" + b"\xff" * 15 if alignment else b""
    path = tmp_path / "frame.joblib"
    path.write_bytes(pickle.PROTO + b"\x04" + framed(body) + padding + np.arange(2.0).tobytes())
    assert scan_pickle(path).refused == ("posix.system",)
    assert not (tmp_path / MARKER).exists()
    load_in_subprocess(path, "joblib", tmp_path)
    assert (tmp_path / MARKER).exists(), "the file should be a working attack"


def test_object_array_names_globals_as_the_outer_stream_does(tmp_path):
    # joblib gives the nested loader the outer one's find_class, so a protocol-2 outer
    # stream maps the nested stream's Python 2 names too.
    object_dtype = F8_DTYPE.replace(text("f8"), text("O8")).replace(
        small_int(0) + pickle.TUPLE + pickle.BUILD, small_int(63) + pickle.TUPLE + pickle.BUILD
    )
    wrapper = pickle.PROTO + b"\x02" + joblib_wrapper(1, False, object_dtype)
    nested = pickle.PROTO + b"\x05" + b"c__builtin__\neval\n" + text("1 + 1") + pickle.TUPLE1
    path = tmp_path / "nested.joblib"
    path.write_bytes(wrapper + nested + pickle.REDUCE + pickle.STOP + pickle.STOP)
    assert "builtins.eval" in scan_pickle(path).refused
    with path.open("rb") as stream, contextlib.suppress(Exception):
        loader = RecordingJoblibUnpickler(str(path), stream, ensure_native_byte_order=False)
        loader.imported = set()
        loader.load()
    assert "builtins.eval" in loader.imported


def test_a_dtype_contradicting_itself_stops_the_scan(tmp_path):
    # An object flag on a float dtype: the scan cannot tell how many bytes joblib reads.
    lying = joblib_wrapper(2, False).replace(
        small_int(0) + pickle.TUPLE + pickle.BUILD, small_int(63) + pickle.TUPLE + pickle.BUILD
    )
    path = tmp_path / "lying.joblib"
    path.write_bytes(pickle.PROTO + b"\x04" + lying + pickle.STOP + np.arange(2.0).tobytes())
    with pytest.raises(ModelImportError, match="contradicts itself"):
        scan_pickle(path)


def test_state_set_on_a_class_is_refused(tmp_path):
    body = (
        text("sklearn.base")
        + text("BaseEstimator")
        + pickle.STACK_GLOBAL
        + pickle.NONE
        + pickle.EMPTY_DICT
        + pickle.TUPLE2
        + pickle.BUILD
        + pickle.STOP
    )
    path = tmp_path / "patch.pkl"
    path.write_bytes(pickle.PROTO + b"\x04" + body)
    assert scan_pickle(path).refused == ("<state set on sklearn.base.BaseEstimator>",)


def test_extensions_and_persistent_ids_are_refused(tmp_path):
    path = tmp_path / "odd.pkl"
    path.write_bytes(
        pickle.PROTO + b"\x02" + pickle.EXT1 + b"\x05" + b"Pid\n" + pickle.TUPLE2 + pickle.STOP
    )
    assert scan_pickle(path).refused == ("<copyreg extension code 5>", "<persistent id>")


# -- files that are not pickles ------------------------------------------------------------


def assert_unreadable(path: Path) -> ModelImportError:
    with pytest.raises(ModelImportError) as caught:
        scan_pickle(path)
    assert type(caught.value) is ModelImportError
    assert caught.value.message.startswith(f"{path.name} is not a model file tabops can read")
    return caught.value


def test_empty_file_is_refused(tmp_path):
    path = tmp_path / "empty.pkl"
    path.write_bytes(b"")
    assert "empty" in assert_unreadable(path).message


@pytest.mark.parametrize("seed", range(20))
def test_random_bytes_are_refused(tmp_path, seed):
    path = tmp_path / "noise.pkl"
    path.write_bytes(random.Random(seed).randbytes(4096))
    assert_unreadable(path)


@pytest.mark.parametrize("way", ["pickle-5", "joblib", "joblib-zlib", "joblib-xz"])
def test_truncated_files_are_refused(tmp_path, way):
    model, _x, _y = FITTED_MODELS["column_pipeline"]()
    whole = dump_model(model, tmp_path / "whole.bin", way).read_bytes()
    path = tmp_path / "cut.bin"
    for length in range(1, len(whole), max(1, len(whole) // 40)):
        path.write_bytes(whole[:length])
        assert_unreadable(path)


def test_lz4_and_zip_files_are_refused_clearly(tmp_path):
    lz4 = tmp_path / "model.lz4"
    lz4.write_bytes(b"\x04\x22\x4d\x18" + b"\x00" * 32)
    assert "lz4" in assert_unreadable(lz4).message
    archive = tmp_path / "model.skops"
    model, _x, _y = FITTED_MODELS["logistic"]()
    dump_model(model, archive, "skops")
    assert "zip archive" in assert_unreadable(archive).message


def test_missing_file_is_refused(tmp_path):
    assert "No such file" in assert_unreadable(tmp_path / "missing.pkl").message


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=300))
def test_scan_of_any_bytes_returns_or_refuses(tmp_path, data):
    path = tmp_path / "fuzz.pkl"
    path.write_bytes(data)
    with contextlib.suppress(ModelImportError):
        scan_pickle(path)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(index=st.integers(min_value=0), value=st.integers(min_value=0, max_value=255))
def test_scan_of_a_damaged_model_returns_or_refuses(tmp_path, index, value):
    model, _x, _y = FITTED_MODELS["random_forest"]()
    data = bytearray(joblib_bytes(tmp_path, model))
    data[index % len(data)] = value
    path = tmp_path / "damaged.joblib"
    path.write_bytes(bytes(data))
    with contextlib.suppress(ModelImportError):
        scan_pickle(path)


def joblib_bytes(tmp_path: Path, model) -> bytes:
    path = tmp_path / "clean.joblib"
    if not path.exists():
        joblib.dump(model, path)
    return path.read_bytes()


# -- the allow-list ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "sklearn.pipeline.Pipeline",
        "sklearn.linear_model._logistic.LogisticRegression",
        "sklearn.linear_model.LogisticRegression",
        "sklearn.calibration._SigmoidCalibration",
        "sklearn._loss.loss.HalfBinomialLoss",
        "sklearn._loss.link.LogitLink",
        "sklearn._loss._loss.CyHalfBinomialLoss",
        "sklearn.tree._tree.Tree",
        "imblearn.pipeline.Pipeline",
        "xgboost.sklearn.XGBClassifier",
        "lightgbm.sklearn.LGBMClassifier",
        "numpy.log1p",
        "numpy.float64",
        "numpy._core.multiarray._reconstruct",
        "numpy.core.multiarray._reconstruct",
        "builtins.slice",
        "copyreg._reconstructor",
    ],
)
def test_allow_list_takes_what_models_need(name):
    assert is_allowed_global(name)


@pytest.mark.parametrize(
    "name",
    [
        "os.system",
        "posix.system",
        "subprocess.Popen",
        "builtins.eval",
        "builtins.exec",
        "builtins.getattr",
        "builtins.__import__",
        "builtins.open",
        "builtins.type",
        "numpy.load",
        "numpy.memmap",
        "numpy.object_",
        "numpy.testing.assert_equal",
        "numpy.core.multiarray.frombuffer_anything",
        "shutil.rmtree",
        "joblib.load",
        "joblib.numpy_pickle_compat.NDArrayWrapper",
        "sklearn.base.clone",
        "sklearn.utils.fixes.parse_version",
        "sklearn.base.BaseEstimator.__subclasses__",
        "sklearn.no_such_module.Thing",
        "sklearn.pipeline.Pipeline.__init__",
        "xgboost.core._load_lib",
        "pandas.read_pickle",
        "",
        "sklearn",
    ],
)
def test_allow_list_refuses_what_runs_code_or_touches_files(name):
    assert not is_allowed_global(name)


def test_no_exact_name_is_a_whole_module():
    assert not {name for name in ALLOWED_GLOBALS if "." not in name}


def test_every_opcode_has_a_handler():
    handled = {
        name.removeprefix("_op_") for name in dir(pickle_trace.Machine) if name.startswith("_op_")
    }
    assert {opcode.name for opcode in pickletools.opcodes} - handled == {"STOP"}


def test_scan_does_not_import_what_the_file_names(tmp_path):
    assert "tabops_never_imported" not in sys.modules
    body = text("tabops_never_imported") + text("thing") + pickle.STACK_GLOBAL + pickle.STOP
    path = tmp_path / "module.pkl"
    path.write_bytes(pickle.PROTO + b"\x04" + body)
    assert scan_pickle(path).refused == ("tabops_never_imported.thing",)
    assert "tabops_never_imported" not in sys.modules
