"""Loading models trained elsewhere: vetted first, then loaded in a child process only."""

from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import skops.io
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.svm import LinearSVC

from foreign_models import FITTED_MODELS, dump_model, fitted_log1p_pipeline, fitted_logistic
from tabops.errors import ModelImportError, UnsafeModelError
from tabops.model.foreign import detect_format, load_foreign, load_trusted
from tabops.model.foreign_child import (
    REQUEST_FILE,
    RESULT_FILE,
    ImportRefusedError,
    describe_model,
    save_as_skops,
)

MARKER = "load-marker"
HANG_SECONDS = 120
"""How long the hanging payload would sleep; the test's timeout is far shorter."""
SHORT_TIMEOUT = 5.0
GONE_DEADLINE = 30.0
USER_MODULE = "tabops_user_features"


class Payload:
    """Unpickling it calls ``function(*args)``."""

    def __init__(self, function, *args) -> None:
        self.function = function
        self.args = args

    def __reduce__(self):
        return (self.function, self.args)


def write_pickle(path: Path, value) -> Path:
    path.write_bytes(pickle.dumps(value, protocol=4))
    return path


@pytest.fixture
def private_tmp(tmp_path, monkeypatch) -> Path:
    """Where ``tempfile`` puts the loader's work folders in this test, to see them go."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "way", "source_format"),
    [
        ("logistic", "skops", "skops"),
        ("column_pipeline", "joblib-zlib", "joblib+zlib"),
        ("random_forest", "joblib", "joblib"),
        ("hist_gradient_boosting", "pickle-5", "pickle"),
        ("log1p_pipeline", "pickle-2", "pickle"),
        ("calibrated", "joblib-xz", "joblib+xz"),
        ("xgboost", "pickle-4", "pickle"),
        ("lightgbm", "joblib-gzip", "joblib+gzip"),
    ],
)
def test_real_models_load_in_the_child_and_predict_alike(
    tmp_path, private_tmp, name, way, source_format
):
    model, x, _y = FITTED_MODELS[name]()
    path = dump_model(model, tmp_path / "model.bin", way)
    assert detect_format(path) == source_format

    loaded = load_foreign(path)

    assert loaded.source_format == source_format
    assert loaded.estimator_type == f"{type(model).__module__}.{type(model).__qualname__}"
    assert loaded.classes == (0, 1)
    assert all(type(label) is int for label in loaded.classes)
    assert loaded.feature_names == tuple(x.columns)
    assert loaded.n_features == x.shape[1]
    if source_format == "skops":
        assert loaded.source_globals == ()
    else:
        assert loaded.estimator_type in loaded.source_globals
    assert loaded.trusted_types == tuple(skops.io.get_untrusted_types(data=loaded.skops))
    restored = load_trusted(loaded)
    np.testing.assert_allclose(restored.predict_proba(x), model.predict_proba(x), rtol=1e-12)
    assert list(private_tmp.iterdir()) == []


@pytest.mark.parametrize("way", ["pickle-4", "joblib-zlib"])
def test_hostile_pickle_is_refused_before_anything_runs(tmp_path, private_tmp, way):
    payload = Payload(os.system, f"touch {tmp_path / MARKER}")
    path = dump_model({"model": fitted_logistic()[0], "hook": payload}, tmp_path / "m.pkl", way)
    with pytest.raises(UnsafeModelError) as caught:
        load_foreign(path)
    assert caught.value.message == (
        "m.pkl would import posix.system; refusing to load it. "
        "Pass --trust-pickle only if you trust where the file came from."
    )
    assert not (tmp_path / MARKER).exists()
    assert list(private_tmp.iterdir()) == []


def test_skops_file_with_refused_types_is_refused(tmp_path):
    path = tmp_path / "model.skops"
    skops.io.dump(FunctionTransformer(func=eval), path)
    with pytest.raises(UnsafeModelError, match=r"model\.skops would import builtins\.eval;"):
        load_foreign(path)


def test_files_that_are_no_model_are_refused_cleanly(tmp_path, capfd):
    noise = tmp_path / "noise.pkl"
    noise.write_bytes(np.random.default_rng(0).bytes(2000))
    archive = tmp_path / "archive.zip"
    archive.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    for path in (noise, archive, tmp_path / "missing.pkl"):
        with pytest.raises(ModelImportError) as caught:
            load_foreign(path)
        assert type(caught.value) is ModelImportError
        assert caught.value.message.startswith(path.name)
    assert capfd.readouterr() == ("", "")


def test_child_refuses_refused_globals_on_its_own(tmp_path):
    # Behind the scan, the child's unpickler keeps its own allow-list.
    source = write_pickle(tmp_path / "model.pkl", Payload(os.system, f"touch {tmp_path / MARKER}"))
    workdir = tmp_path / "work"
    workdir.mkdir()
    request = {"source": str(source), "format": "pickle", "trust": False, "trusted": []}
    (workdir / REQUEST_FILE).write_text(json.dumps(request))
    subprocess.run(
        [sys.executable, "-m", "tabops.model.foreign_child", str(workdir)], cwd=workdir, check=True
    )
    result = json.loads((workdir / RESULT_FILE).read_text())
    assert "refused to import posix.system" in result["error"]
    assert not (tmp_path / MARKER).exists()


def user_code_pickle(tmp_path: Path) -> Path:
    """A fitted pipeline whose FunctionTransformer calls ``tabops_user_features.double``.

    The file is written by renaming numpy's log1p in a protocol-2 pickle, so this process
    never imports the user's module.
    """
    model, _x, _y = fitted_log1p_pipeline()
    data = pickle.dumps(model, protocol=2)
    assert data.count(b"cnumpy\nlog1p\n") == 1
    path = tmp_path / "custom.pkl"
    path.write_bytes(data.replace(b"cnumpy\nlog1p\n", f"c{USER_MODULE}\ndouble\n".encode()))
    code = tmp_path / "usercode"
    code.mkdir()
    (code / f"{USER_MODULE}.py").write_text("def double(x):\n    return x * 2\n")
    return path


@pytest.mark.slow
def test_trusted_pickle_with_user_code_loads_only_in_the_child(tmp_path, monkeypatch):
    path = user_code_pickle(tmp_path)
    with pytest.raises(UnsafeModelError, match=rf"custom\.pkl would import {USER_MODULE}\.double;"):
        load_foreign(path)

    with pytest.raises(ModelImportError, match=rf"No module named '{USER_MODULE}'"):
        load_foreign(path, trust_pickle=True)

    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "usercode"))
    loaded = load_foreign(path, trust_pickle=True)
    assert f"{USER_MODULE}.double" in loaded.source_globals
    assert f"{USER_MODULE}.double" in loaded.trusted_types
    assert loaded.classes == (0, 1)
    assert USER_MODULE not in sys.modules


@pytest.mark.slow
def test_child_that_hangs_is_stopped_with_everything_it_started(tmp_path, private_tmp):
    pid_file = tmp_path / "pid"
    command = f"echo $$ > {pid_file}; exec sleep {HANG_SECONDS}"
    path = write_pickle(tmp_path / "slow.pkl", Payload(os.system, command))
    with pytest.raises(ModelImportError) as caught:
        load_foreign(path, trust_pickle=True, timeout=SHORT_TIMEOUT)
    assert (
        caught.value.message
        == f"loading slow.pkl took longer than {SHORT_TIMEOUT:g} s; it was stopped"
    )
    assert list(private_tmp.iterdir()) == []
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + GONE_DEADLINE
    while is_running(pid):
        assert time.monotonic() < deadline, f"the payload's process {pid} outlived the load"
        time.sleep(0.1)


def is_running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_child_that_crashes_gives_a_clean_message(tmp_path, private_tmp, capfd):
    path = write_pickle(tmp_path / "crash.pkl", Payload(os.abort))
    with pytest.raises(ModelImportError) as caught:
        load_foreign(path, trust_pickle=True)
    assert caught.value.message == "loading crash.pkl crashed the loader (signal SIGABRT)"
    assert capfd.readouterr() == ("", "")
    assert list(private_tmp.iterdir()) == []


def test_child_runs_in_its_private_folder_without_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "do-not-leak")
    monkeypatch.setenv("TABOPS_DATABASE_URL", "postgresql://user:secret@db/tabops")
    seen = tmp_path / "seen"
    command = f"(pwd; ls -A; env) > {seen}"
    path = write_pickle(tmp_path / "env.pkl", Payload(os.system, command))
    with pytest.raises(
        ModelImportError, match=r"holds a builtins\.int, which has no predict_proba"
    ):
        load_foreign(path, trust_pickle=True)
    lines = seen.read_text().splitlines()
    workdir = lines[0]
    assert Path(workdir).name.startswith("tabops-import-")
    assert lines[1:4] == ["request.json", "source", "stderr"]
    assert f"HOME={workdir}" in lines
    text = "\n".join(lines)
    assert "do-not-leak" not in text
    assert "secret@db" not in text


def multiclass_model():
    x, y = make_classification(n_samples=90, n_classes=3, n_informative=3, random_state=0)
    return LogisticRegression().fit(x, y)


@pytest.mark.slow
def test_model_that_is_no_classifier_is_refused(tmp_path):
    path = dump_model(StandardScaler().fit(fitted_logistic()[1]), tmp_path / "m.joblib", "joblib")
    with pytest.raises(ModelImportError) as caught:
        load_foreign(path)
    assert type(caught.value) is ModelImportError
    assert caught.value.message.startswith(
        "m.joblib holds a sklearn.preprocessing._data.StandardScaler, which has no "
        "predict_proba and no classes_; tabops imports fitted classifiers"
    )


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            multiclass_model,
            "m.pkl holds a sklearn.linear_model._logistic.LogisticRegression "
            "with 3 classes (0, 1, 2); tabops imports binary classifiers",
        ),
        (
            lambda: LinearSVC().fit(*fitted_logistic()[1:]),
            "m.pkl holds a sklearn.svm._classes.LinearSVC, which has no predict_proba; ",
        ),
    ],
    ids=["three-classes", "no-predict-proba"],
)
def test_child_check_refuses_what_is_not_a_binary_classifier(build, message):
    with pytest.raises(ImportRefusedError) as caught:
        describe_model(build(), "m.pkl")
    assert message in str(caught.value)


def test_child_check_reads_labels_and_features_as_plain_values():
    _model, x, y = fitted_logistic()
    model = LogisticRegression().fit(x, y.map({0: "stays", 1: "leaves"}))
    facts = describe_model(model, "m.pkl")
    assert facts == {
        "estimator_type": "sklearn.linear_model._logistic.LogisticRegression",
        "classes": ["leaves", "stays"],
        "feature_names": ["age", "income"],
        "n_features": 2,
    }
    assert all(type(label) is str for label in facts["classes"])
    flags = LogisticRegression().fit(np.eye(4), [True, False, True, False])
    assert describe_model(flags, "m.pkl")["classes"] == [False, True]
    assert describe_model(flags, "m.pkl")["feature_names"] is None


def test_model_skops_cannot_store_is_refused_naming_it():
    _model, x, y = fitted_logistic()
    holder = LogisticRegression().fit(x, y)
    holder.pattern_ = re.compile("[a-z]+")
    with pytest.raises(ImportRefusedError) as caught:
        save_as_skops(holder, "sklearn.linear_model._logistic.LogisticRegression")
    message = str(caught.value)
    assert (
        "skops, which cannot store this sklearn.linear_model._logistic.LogisticRegression"
        in message
    )
    assert "re.Pattern" in message
