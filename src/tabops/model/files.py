"""The files of a registry version: the model (skops, allow-listed types) and Parquet tables."""

from __future__ import annotations

import io
import json
import threading
import zipfile
from collections.abc import Iterable
from typing import Any

import pandas as pd
import skops.io as skops_io
from sklearn.pipeline import Pipeline

from tabops.errors import ArtifactIntegrityError
from tabops.model.calibration import CalibratedPipeline
from tabops.model.pickle_allowlist import is_allowed_global

MODEL_FILE = "model.skops"
ONNX_FILE = "model.onnx"
GOLDEN_FILE = "golden.parquet"
REFERENCE_FILE = "reference.parquet"
REFERENCE_STATS_FILE = "reference_stats.json"
CARD_FILE = "card.html"
GOLDEN_PROBABILITY = "__probability__"
GOLDEN_TOLERANCE = 1e-6

# Loading a model file parses every array's header with ``ast.literal_eval`` (numpy). On
# CPython 3.11 the AST constructor's recursion counter is shared by all threads, so two
# threads building syntax trees at once can fail with "SystemError: AST constructor
# recursion depth mismatch" when one yields mid-tree. Loads are taken one at a time.
_LOADING = threading.Lock()

# Types skops does not trust by default but which our own candidates contain. Anything
# else found in a model file is refused: loading it could run code. The LightGBM and XGBoost
# boosters restore from their own model text or bytes through their native loader, not
# pickle (their ``__setstate__``).
TRUSTED_TYPES = frozenset(
    {
        "collections.OrderedDict",
        "lightgbm.basic.Booster",
        "lightgbm.sklearn.LGBMClassifier",
        "numpy.dtype",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.tree._tree.Tree",
        "sklearn.utils._bunch.Bunch",
        "tabops.model.encoder.FeatureEncoder",
        "tabops.model.calibration.CalibratedPipeline",
        "tabops.model.calibration.ProbabilityCalibrator",
        "tabops.model.imported.FeatureColumns",
        "tabops.model.imported.SwappedClasses",
        "xgboost.core.Booster",
        "xgboost.sklearn.XGBClassifier",
    }
)
# Where tabops 0.1.0 kept the classes its model files name. skops imports a class by the
# module written in the file, so those names are rewritten on load (the file's sha256 is
# checked on the bytes as stored, before this).
LEGACY_MODULES = {
    "tabops.encoding": "tabops.model.encoder",
    "tabops.training.calibration": "tabops.model.calibration",
}
_SCHEMA = "schema.json"


def dump_model(model: Pipeline | CalibratedPipeline, trusted: Iterable[str] = ()) -> bytes:
    """Serialise a fitted model with skops (no pickle).

    ``trusted`` names types the version itself vouches for beyond the allow-list (an
    imported model's, recorded in its manifest); see ``load_model`` for which count.

    Raises:
        ArtifactIntegrityError: the model holds a type the loader would refuse.
    """
    data = bytes(skops_io.dumps(model))
    refused = refused_types(skops_io.get_untrusted_types(data=data), trusted)
    if refused:
        raise ArtifactIntegrityError(f"model holds types outside the allow-list: {refused}")
    return data


def load_model(data: bytes, trusted: Iterable[str] = ()) -> Pipeline | CalibratedPipeline:
    """Load a skops model, trusting only the types on our allow-list and ``trusted``.

    ``trusted`` is the version's own list (``Manifest.trusted_types``): the types an imported
    model holds beyond the allow-list. Only those the import allow-list's rules accept
    count (estimator classes of scikit-learn and the boosting libraries, numpy maths): a
    manifest cannot make the loader trust arbitrary code.

    Raises:
        ArtifactIntegrityError: the file holds a type that is not on either list.
    """
    data = migrate_model_file(data)
    untrusted = set(skops_io.get_untrusted_types(data=data))
    refused = refused_types(untrusted, trusted)
    if refused:
        raise ArtifactIntegrityError(f"model file holds untrusted types: {', '.join(refused)}")
    with _LOADING:
        model = skops_io.loads(data, trusted=sorted(untrusted))
    if not isinstance(model, Pipeline | CalibratedPipeline):
        raise ArtifactIntegrityError("model file does not hold a scikit-learn Pipeline")
    return model


def refused_types(found: Iterable[str], trusted: Iterable[str] = ()) -> list[str]:
    """The types of ``found`` a model file may not hold, sorted.

    That is, those off the allow-list and not among the ``trusted`` ones the import
    allow-list's rules accept.
    """
    extra = {name for name in trusted if is_allowed_global(name)}
    return sorted(set(found) - TRUSTED_TYPES - extra)


def migrate_model_file(data: bytes) -> bytes:
    """A skops file whose classes are named where this release keeps them.

    Files written by tabops 0.1.0 name ``tabops.encoding`` and ``tabops.training.calibration``;
    anything else is returned unchanged. Only the module names in the file's schema change.

    Raises:
        ArtifactIntegrityError: the bytes are not a skops file.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as source:
            schema = json.loads(source.read(_SCHEMA))
            if not _rename_modules(schema):
                return data
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as target:
                for item in source.infolist():
                    content = source.read(item)
                    if item.filename == _SCHEMA:
                        content = json.dumps(schema).encode()
                    target.writestr(item, content)
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise ArtifactIntegrityError(f"the model file is not a skops file: {exc}") from exc
    return buffer.getvalue()


def _rename_modules(node: Any) -> bool:
    """Rewrite legacy ``__module__`` entries in place; whether any was found."""
    found = False
    if isinstance(node, dict):
        module = node.get("__module__")
        if isinstance(module, str) and module in LEGACY_MODULES:
            node["__module__"] = LEGACY_MODULES[module]
            found = True
        for value in node.values():
            found = _rename_modules(value) or found
    elif isinstance(node, list):
        for value in node:
            found = _rename_modules(value) or found
    return found


def frame_to_parquet(frame: pd.DataFrame) -> bytes:
    """A frame as Parquet bytes (pyarrow)."""
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def parquet_to_frame(data: bytes) -> pd.DataFrame:
    """Parquet bytes as a frame."""
    return pd.read_parquet(io.BytesIO(data))
