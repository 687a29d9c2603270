"""Which globals a model pickle may import: exact names, plus estimator classes by rule.

A pickle can call any function it names, so the list is of exact names, never of module
prefixes: ``numpy.load``, ``numpy.memmap`` or ``numpy.testing`` read and write files or run
code although they sit beside ``numpy.ndarray``. Beyond the exact names, a CLASS is allowed
when it is a scikit-learn estimator (a subclass of ``sklearn.base.BaseEstimator``) defined in
scikit-learn, imbalanced-learn, XGBoost or LightGBM, or one of the loss and link classes
fitted scikit-learn models hold; a name in ``numpy`` is allowed when it is a ufunc (pure
maths, as in ``FunctionTransformer(np.log1p)``) or a numpy scalar type. Checking those rules
imports the named module only when it belongs to one of those packages.
"""

from __future__ import annotations

import importlib
import re
import warnings
from functools import lru_cache

ESTIMATOR_PACKAGES = frozenset({"sklearn", "imblearn", "xgboost", "lightgbm"})
"""Packages whose estimator classes a model file may name."""

_SPARSE_FORMATS = ("bsr", "coo", "csc", "csr", "dia", "dok", "lil")

ALLOWED_GLOBALS = frozenset(
    {
        # Python's own: containers and values, and the helpers protocols 0-2 use for them.
        "builtins.bool",
        "builtins.bytearray",
        "builtins.bytes",
        "builtins.complex",
        "builtins.dict",
        "builtins.float",
        "builtins.frozenset",
        "builtins.int",
        "builtins.list",
        "builtins.object",
        "builtins.range",
        "builtins.set",
        "builtins.slice",
        "builtins.str",
        "builtins.tuple",
        "_codecs.encode",
        "copyreg._reconstructor",
        "collections.OrderedDict",
        "collections.defaultdict",
        # numpy arrays, dtypes and scalars (numpy 1 spells its core module without "_").
        "numpy.dtype",
        "numpy.ndarray",
        "numpy.core.multiarray._reconstruct",
        "numpy.core.multiarray.scalar",
        "numpy.core.numeric._frombuffer",
        "numpy._core.multiarray._reconstruct",
        "numpy._core.multiarray.scalar",
        "numpy._core.numeric._frombuffer",
        # numpy random states (a random_state parameter, a fitted forest's generator).
        "numpy.random._pickle.__bit_generator_ctor",
        "numpy.random._pickle.__generator_ctor",
        "numpy.random._pickle.__randomstate_ctor",
        "numpy.random._mt19937.MT19937",
        "numpy.random._pcg64.PCG64",
        "numpy.random._pcg64.PCG64DXSM",
        "numpy.random._philox.Philox",
        "numpy.random._sfc64.SFC64",
        "numpy.random._generator.Generator",
        "numpy.random.mtrand.RandomState",
        "numpy.random.bit_generator.SeedSequence",
        "numpy.random.bit_generator.__pyx_unpickle_SeedSequence",
        # joblib's placeholder for an array whose bytes follow it in the file.
        "joblib.numpy_pickle.NumpyArrayWrapper",
        # What fitted estimators hold besides estimators.
        "sklearn.tree._tree.Tree",
        "sklearn.utils._bunch.Bunch",
        "sklearn._loss.link.Interval",
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.neighbors._ball_tree.BallTree",
        "sklearn.neighbors._kd_tree.KDTree",
        "xgboost.core.Booster",
        "lightgbm.basic.Booster",
        *(
            f"scipy.sparse._{form}.{form}_{kind}"
            for form in _SPARSE_FORMATS
            for kind in ("matrix", "array")
        ),
        *(f"scipy.sparse.{form}.{form}_matrix" for form in _SPARSE_FORMATS),
    }
)
"""Every global allowed by its exact ``module.qualname``."""

_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
# sklearn's losses and links: plain classes (not estimators) a fitted booster or linear
# model keeps, by module and the base class that marks them.
_LOSS_BASES = {
    "sklearn._loss.loss": "BaseLoss",
    "sklearn._loss.link": "BaseLink",
    "sklearn._loss._loss": "CyLossFunction",
}


def is_allowed_global(name: str) -> bool:
    """Whether a pickle may import ``name`` (``"module.qualname"``) when it loads.

    The name is allowed when it is on the exact list, or when some split of it into a
    module and a qualified name resolves, in an estimator package, to an allowed class.
    """
    if name in ALLOWED_GLOBALS:
        return True
    parts = name.split(".")
    return any(
        is_allowed_pair(".".join(parts[:cut]), ".".join(parts[cut:]))
        for cut in range(1, len(parts))
    )


def is_allowed_pair(module: str, qualname: str) -> bool:
    """Whether a pickle may import ``qualname`` from ``module``, as its loader would."""
    name = f"{module}.{qualname}"
    if name in ALLOWED_GLOBALS:
        return True
    if not _DOTTED.match(module) or not _DOTTED.match(qualname):
        return False
    if any(part.startswith("__") for part in qualname.split(".")):
        return False
    if module == "numpy" and "." not in qualname:
        return _is_numpy_maths(qualname)
    if module.split(".")[0] not in ESTIMATOR_PACKAGES:
        return False
    return _is_estimator_class(module, qualname)


@lru_cache(maxsize=1024)
def _is_numpy_maths(name: str) -> bool:
    """A numpy ufunc (``numpy.log1p``) or scalar type (``numpy.float64``)."""
    import numpy as np

    with warnings.catch_warnings():
        # numpy warns on (or refuses) attributes it deprecated or removed.
        warnings.simplefilter("ignore")
        try:
            value = getattr(np, name)
        except AttributeError:
            return False
    if isinstance(value, np.ufunc):
        return True
    # numpy.object_(x) hands back x itself: no model needs it, and it would let a file
    # pass any object off as another.
    return isinstance(value, type) and issubclass(value, np.generic) and value is not np.object_


@lru_cache(maxsize=1024)
def _is_estimator_class(module: str, qualname: str) -> bool:
    """An estimator class, or a loss or link class, defined in an estimator package."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            value: object = importlib.import_module(module)
            for part in qualname.split("."):
                value = getattr(value, part)
        except (ImportError, AttributeError):
            return False
        except Exception:  # a module of those packages that fails to import here
            return False
    if not isinstance(value, type):
        return False
    if str(value.__module__).split(".")[0] not in ESTIMATOR_PACKAGES:
        return False
    from sklearn.base import BaseEstimator

    if issubclass(value, BaseEstimator):
        return True
    base_name = _LOSS_BASES.get(value.__module__)
    if base_name is None:
        return False
    base = getattr(importlib.import_module(value.__module__), base_name, None)
    return isinstance(base, type) and issubclass(value, base)
