"""Load one model file trained elsewhere (pickle, joblib, skops) safely, as skops bytes.

The file is vetted first, in this process and without running any of it: a pickle's
globals by ``pickle_scan``, a skops file's types by skops. Only then is it loaded, in a child
process (``foreign_child``) that starts in an empty private directory with a pared-down
environment and whose output never reaches the caller beyond a short message. What comes back
is the estimator re-saved with skops, whose types are vetted again before anyone loads it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tabops.errors import ModelImportError, Problem
from tabops.model.foreign_child import MODEL_FILE, REQUEST_FILE, RESULT_FILE
from tabops.model.pickle_allowlist import is_allowed_global
from tabops.model.pickle_scan import ZIP_PREFIX, check_pickle, scan_pickle, unsafe_model_error

DEFAULT_TIMEOUT_SECONDS = 300.0
SKOPS_SCHEMA = "schema.json"
# What the child keeps of this process's environment: enough to find Python, the user's
# own modules (a trusted pickle's) and the locale; not credentials or tabops settings.
_KEPT_VARIABLES = frozenset(
    {
        "PATH",
        "PYTHONPATH",
        "PYTHONHOME",
        "LD_LIBRARY_PATH",
        "TMPDIR",
        "LANG",
        "LC_ALL",
        "LC_CTYPE",
        "TZ",
        "COVERAGE_PROCESS_START",
    }
)
_KEPT_PREFIXES = ("OMP_", "OPENBLAS_", "MKL_", "COV_CORE_")
_STDERR_TAIL = 4096
_POLL_SECONDS = 0.05


@dataclass(frozen=True)
class ForeignModel:
    """A model file trained elsewhere, loaded in a child process and re-saved with skops."""

    skops: bytes
    """The loaded estimator, serialised with ``skops.io.dumps``."""
    trusted_types: tuple[str, ...]
    """``skops.io.get_untrusted_types`` of ``skops``, every one vetted."""
    source_format: str
    """``"pickle"``, ``"joblib"``, ``"joblib+zlib"`` (or another compression), ``"skops"``."""
    source_globals: tuple[str, ...]
    """What the pickle imported (empty for skops)."""
    estimator_type: str
    """The loaded object's class, e.g. ``"sklearn.pipeline.Pipeline"``."""
    classes: tuple[Any, ...]
    """``classes_`` as plain Python values (int, str, bool or float)."""
    feature_names: tuple[str, ...] | None
    """``feature_names_in_``, when the model has it."""
    n_features: int | None
    """``n_features_in_``, when the model has it."""


def detect_format(path: Path) -> str:
    """``"skops"`` (a zip holding schema.json), ``"pickle"``, ``"joblib"`` or ``"joblib+..."``.

    Raises:
        ModelImportError: the file is none of these, or cannot be read.
    """
    return "skops" if _is_skops(path) else scan_pickle(path).format


def load_foreign(
    path: Path, *, trust_pickle: bool = False, timeout: float = DEFAULT_TIMEOUT_SECONDS
) -> ForeignModel:
    """Vet the model file at ``path``, load it in a child process and re-save it with skops.

    The file is copied into a private directory first, so what is vetted is what is loaded.

    Args:
        path: a pickle, joblib or skops file holding a fitted binary classifier.
        trust_pickle: load it even when it would import globals outside the allow-list.
        timeout: seconds the child may take before it is killed.

    Raises:
        UnsafeModelError: the file would import refused globals (or holds refused skops
            types) and ``trust_pickle`` is False; nothing of it ran.
        ModelImportError: the file cannot be read, the child failed, crashed or timed out,
            or the model is not a binary classifier skops can store.
    """
    with tempfile.TemporaryDirectory(prefix="tabops-import-", ignore_cleanup_errors=True) as name:
        workdir = Path(name)
        copy = workdir / "source" / path.name
        copy.parent.mkdir()
        try:
            shutil.copyfile(path, copy)
        except OSError as exc:
            raise _import_error(f"{path.name} cannot be read: {exc.strerror or exc}") from exc
        source_globals: tuple[str, ...] = ()
        input_types: list[str] = []
        if _is_skops(copy):
            file_format = "skops"
            input_types = _skops_types(copy, file=copy)
            _vet_types(path.name, input_types, trust=trust_pickle)
        else:
            scan = check_pickle(copy, trust=trust_pickle)
            file_format, source_globals = scan.format, scan.globals
        request = {
            "source": str(copy),
            "format": file_format,
            "trust": trust_pickle,
            "trusted": input_types,
        }
        result, data = _run_child(workdir, path.name, request, timeout)
    trusted_types = _skops_types(path, data=data)
    _vet_types(path.name, trusted_types, trust=trust_pickle)
    return ForeignModel(
        skops=data,
        trusted_types=tuple(trusted_types),
        source_format=file_format,
        source_globals=source_globals,
        estimator_type=result["estimator_type"],
        classes=tuple(result["classes"]),
        feature_names=None if result["feature_names"] is None else tuple(result["feature_names"]),
        n_features=result["n_features"],
    )


def load_trusted(model: ForeignModel) -> Any:
    """The estimator of ``model``, loaded from its skops bytes with its vetted types."""
    import skops.io

    return skops.io.loads(model.skops, trusted=list(model.trusted_types))


def _skops_types(path: Path, *, file: Path | None = None, data: bytes | None = None) -> list[str]:
    import skops.io

    try:
        types: list[str] = skops.io.get_untrusted_types(file=file, data=data)
    except Exception as exc:  # skops reads a damaged archive with assorted errors
        raise _import_error(f"{path.name} is not a skops file tabops can read: {exc}") from exc
    return sorted(types)


def _vet_types(file_name: str, types: list[str], *, trust: bool) -> None:
    refused = tuple(name for name in types if not is_allowed_global(name))
    if refused and not trust:
        raise unsafe_model_error(file_name, refused)


def _run_child(
    workdir: Path, file_name: str, request: dict[str, Any], timeout: float
) -> tuple[dict[str, Any], bytes]:
    """Run the loader child on ``request`` in ``workdir``; its result and skops bytes."""
    (workdir / REQUEST_FILE).write_text(json.dumps(request))
    stderr_path = workdir / "stderr"
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "tabops.model.foreign_child", str(workdir)],
            cwd=workdir,
            env=_child_environment(workdir),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
        try:
            finished = _wait_unreaped(process.pid, timeout)
        finally:
            _kill_group(process)
        if not finished:
            raise _import_error(
                f"loading {file_name} took longer than {timeout:g} s; it was stopped"
            )
        code = process.returncode
    result_path = workdir / RESULT_FILE
    if code != 0 or not result_path.exists():
        raise _import_error(f"loading {file_name} {_how_it_ended(code)}{_last_line(stderr_path)}")
    try:
        result = json.loads(result_path.read_text())
        if "error" in result:
            raise _import_error(str(result["error"]))
        _check_result(result)
        return result, (workdir / MODEL_FILE).read_bytes()
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise _import_error(f"loading {file_name} left an unreadable result ({exc})") from exc


def _check_result(result: Any) -> None:
    """Refuse a result not shaped as the child writes it (a trusted file may have run)."""
    names = result["feature_names"]
    if not (
        isinstance(result["estimator_type"], str)
        and isinstance(result["classes"], list)
        and all(isinstance(label, bool | int | float | str) for label in result["classes"])
        and (names is None or (isinstance(names, list) and all(isinstance(n, str) for n in names)))
        and (result["n_features"] is None or type(result["n_features"]) is int)
    ):
        raise ValueError("fields of the wrong type")


def _child_environment(workdir: Path) -> dict[str, str]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if key in _KEPT_VARIABLES or key.startswith(_KEPT_PREFIXES)
    }
    # No user configuration (or credentials) found through HOME.
    environment["HOME"] = str(workdir)
    environment["PYTHONDONTWRITEBYTECODE"] = "1"
    return environment


def _wait_unreaped(pid: int, timeout: float) -> bool:
    """Wait until the child exits, leaving it unreaped; False when ``timeout`` passes first.

    Until it is reaped, its process id (which names its process group) cannot be reused,
    so the group can be killed afterwards without hitting an unrelated process.
    """
    deadline = time.monotonic() + timeout
    while os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_SECONDS)
    return True


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """Kill whatever the child started (it leads its own process group), then reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _how_it_ended(code: int) -> str:
    if code < 0:
        try:
            return f"crashed the loader (signal {signal.Signals(-code).name})"
        except ValueError:
            return f"crashed the loader (signal {-code})"
    if code == 0:
        return "stopped the loader before it finished"
    return f"crashed the loader (exit code {code})"


def _last_line(stderr_path: Path) -> str:
    """The last line the child wrote to stderr, short, for a hint of what went wrong."""
    with stderr_path.open("rb") as stream:
        stream.seek(max(0, stderr_path.stat().st_size - _STDERR_TAIL))
        lines = stream.read().decode("utf-8", "replace").strip().splitlines()
    if not lines:
        return ""
    last = " ".join(lines[-1].split())
    return f": {last[:200]}"


def _is_skops(path: Path) -> bool:
    """Whether ``path`` is a skops file; False for anything that is not a zip archive.

    Raises:
        ModelImportError: it cannot be read, or is a zip archive without a skops schema.
    """
    try:
        with path.open("rb") as stream:
            if stream.read(len(ZIP_PREFIX)) != ZIP_PREFIX:
                return False
        with zipfile.ZipFile(path) as archive:
            if SKOPS_SCHEMA in archive.namelist():
                return True
    except zipfile.BadZipFile as exc:
        raise _import_error(f"{path.name} is a damaged zip archive: {exc}") from exc
    except OSError as exc:
        raise _import_error(f"{path.name} cannot be read: {exc.strerror or exc}") from exc
    raise _import_error(f"{path.name} is a zip archive but not a skops file (no {SKOPS_SCHEMA})")


def _import_error(message: str) -> ModelImportError:
    return ModelImportError(message, [Problem("model", message)])
