"""The child process that loads a model file trained elsewhere, checks it and saves it as skops.

Run as ``python -m tabops.model.foreign_child WORKDIR`` by ``foreign.load_foreign``, in a
private temporary directory: it reads ``request.json`` there, loads the file (pickle, joblib
or skops), checks that it is a fitted binary classifier, re-saves it with skops and writes
``model.skops`` and ``result.json``. Only this process ever runs the file's code. Unless the
file is trusted, unpickling also refuses any global outside the allow-list, as a second guard
behind the parent's scan.
"""

from __future__ import annotations

import _compat_pickle
import json
import pickle
import resource
import sys
from pathlib import Path
from typing import Any

from tabops.model.pickle_allowlist import is_allowed_pair

REQUEST_FILE = "request.json"
RESULT_FILE = "result.json"
MODEL_FILE = "model.skops"
_MAX_MESSAGE = 500


class ImportRefusedError(Exception):
    """The file loaded but is not a model tabops can import; the message says why."""


def _allowed_name(unpickler: Any, module: str, name: str) -> tuple[str, str]:
    """The name the loader will import, as the scan named it (Python 2 names mapped)."""
    if unpickler.proto < 3 and unpickler.fix_imports:
        if (module, name) in _compat_pickle.NAME_MAPPING:
            return _compat_pickle.NAME_MAPPING[(module, name)]
        if module in _compat_pickle.IMPORT_MAPPING:
            return _compat_pickle.IMPORT_MAPPING[module], name
    return module, name


def _guarded_find_class(base: Any) -> Any:
    def find_class(self: Any, module: str, name: str) -> Any:
        checked = _allowed_name(self, module, name)
        if not is_allowed_pair(*checked):
            raise pickle.UnpicklingError(f"refused to import {'.'.join(checked)}")
        return base(self, module, name)

    return find_class


class _GuardedUnpickler(pickle._Unpickler):
    find_class = _guarded_find_class(pickle._Unpickler.find_class)


def _load(source: Path, file_format: str, *, guarded: bool, trusted: list[str]) -> Any:
    if file_format == "skops":
        import skops.io

        return skops.io.load(source, trusted=trusted)
    if file_format == "pickle":
        with source.open("rb") as stream:
            return _GuardedUnpickler(stream).load() if guarded else pickle.load(stream)
    import joblib.numpy_pickle  # type: ignore[import-untyped]  # joblib ships no types

    if guarded:
        unpickler_class = joblib.numpy_pickle.NumpyUnpickler
        unpickler_class.find_class = _guarded_find_class(unpickler_class.find_class)
    return joblib.load(source)


def _plain_label(value: Any) -> Any:
    item = value.item() if hasattr(value, "item") and callable(value.item) else value
    if not isinstance(item, bool | int | float | str):
        raise ImportRefusedError(
            f"its class labels include {item!r} ({type(item).__name__}); tabops takes "
            "numbers, strings or booleans"
        )
    return item


def describe_model(model: Any, file_name: str) -> dict[str, Any]:
    """The facts ``ForeignModel`` carries, after checking ``model`` is a binary classifier.

    Raises:
        ImportRefusedError: it lacks ``predict_proba`` or ``classes_``, or has other than
            two classes.
    """
    estimator_type = f"{type(model).__module__}.{type(model).__qualname__}"
    missing = [name for name in ("predict_proba", "classes_") if not hasattr(model, name)]
    if missing:
        raise ImportRefusedError(
            f"{file_name} holds a {estimator_type}, which has no {' and no '.join(missing)}; "
            "tabops imports fitted classifiers that predict probabilities of two classes"
        )
    classes = [_plain_label(label) for label in list(model.classes_)]
    if len(classes) != 2:
        raise ImportRefusedError(
            f"{file_name} holds a {estimator_type} with {len(classes)} classes "
            f"({', '.join(map(repr, classes[:10]))}); tabops imports binary classifiers"
        )
    names = getattr(model, "feature_names_in_", None)
    count = getattr(model, "n_features_in_", None)
    return {
        "estimator_type": estimator_type,
        "classes": classes,
        "feature_names": None if names is None else [str(name) for name in names],
        "n_features": None if count is None else int(count),
    }


def save_as_skops(model: Any, estimator_type: str) -> bytes:
    """The model in skops form, checked to load back.

    Raises:
        ImportRefusedError: skops cannot save (or reload) a type the model holds.
    """
    import skops.io

    try:
        data: bytes = skops.io.dumps(model)
        skops.io.loads(data, trusted=skops.io.get_untrusted_types(data=data))
    except Exception as exc:
        raise ImportRefusedError(
            f"tabops stores models with skops, which cannot store this {estimator_type}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    return data


def run(workdir: Path) -> dict[str, Any]:
    """Carry out the request in ``workdir``; the result to write beside it."""
    request = json.loads((workdir / REQUEST_FILE).read_text())
    source = Path(request["source"])
    try:
        model = _load(
            source,
            request["format"],
            guarded=not request["trust"],
            trusted=list(request["trusted"]),
        )
    except Exception as exc:
        return {"error": f"loading {source.name} failed: {type(exc).__name__}: {exc}"}
    try:
        facts = describe_model(model, source.name)
        data = save_as_skops(model, facts["estimator_type"])
    except ImportRefusedError as exc:
        return {"error": str(exc)}
    except Exception as exc:  # the model's own code, run by hasattr or classes_
        return {"error": f"checking {source.name} failed: {type(exc).__name__}: {exc}"}
    (workdir / MODEL_FILE).write_bytes(data)
    return facts


def main() -> None:
    """Entry point of the child: ``python -m tabops.model.foreign_child WORKDIR``."""
    # A crash leaves no core file of a model nobody vetted.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    workdir = Path(sys.argv[1])
    result = run(workdir)
    if "error" in result:
        result["error"] = str(result["error"])[:_MAX_MESSAGE]
    (workdir / RESULT_FILE).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
