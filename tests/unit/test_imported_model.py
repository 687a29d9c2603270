import os
import warnings

import numpy as np
import pandas as pd
import pytest
import skops.io as skops_io
from imblearn.pipeline import Pipeline as ImbalancedPipeline
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from tabops.errors import ArtifactIntegrityError
from tabops.model.files import dump_model, load_model
from tabops.model.imported import FeatureColumns, imported_parts, wrap_imported

FRAME = pd.DataFrame(
    {
        "x": [0.5, 1.5, 2.5, 3.5, 4.5, 5.5],
        "colour": pd.Series(["red", None, "blue", "red", "blue", None], dtype=object),
        "extra": [1, 2, 3, 4, 5, 6],
    }
)
LABELS = [0, 1, 0, 1, 1, 0]


def test_feature_columns_picks_the_columns_in_order_with_text_gaps_as_nan():
    step = FeatureColumns(["colour", "x"], ["colour"]).fit(FRAME)

    out = step.transform(FRAME)

    assert list(out.columns) == ["colour", "x"]
    assert out["colour"].isna().tolist() == [False, True, False, False, False, True]
    assert all(value is not None for value in out["colour"])  # NaN, as pandas reads gaps
    assert FRAME["colour"][1] is None  # the input is left as it was


def test_feature_columns_refuses_a_frame_without_its_columns():
    with pytest.raises(ValueError, match="size"):
        FeatureColumns(["x", "size"]).fit(FRAME)


def test_a_model_fitted_on_numpy_is_served_frames_without_a_feature_name_warning():
    model = LogisticRegression().fit(FRAME[["x", "extra"]].to_numpy(), LABELS)
    stored = wrap_imported(
        model, ["x", "extra"], [], as_array=True, positive_first=False, sample=FRAME
    )

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        probabilities = stored.predict_proba(FRAME)

    expected = model.predict_proba(FRAME[["x", "extra"]].to_numpy())
    np.testing.assert_array_equal(probabilities, expected)


def test_a_model_whose_positive_class_comes_first_is_stored_with_it_second():
    model = LogisticRegression().fit(FRAME[["x"]], ["yes", "no", "yes", "no", "no", "yes"])
    stored = wrap_imported(model, ["x"], [], as_array=False, positive_first=True, sample=FRAME)

    loaded = load_model(dump_model(stored))

    assert list(loaded.classes_) == ["yes", "no"]
    np.testing.assert_array_equal(
        loaded.predict_proba(FRAME)[:, 1], model.predict_proba(FRAME[["x"]])[:, 0]
    )
    parts = imported_parts(loaded)
    assert parts is not None
    assert parts[2] is True


def test_a_manifest_cannot_make_the_loader_trust_a_type_outside_the_allow_list_rules():
    data = skops_io.dumps(Pipeline([("run", FunctionTransformer(os.system))]))

    with pytest.raises(ArtifactIntegrityError, match=r"posix\.system"):
        load_model(data, trusted=["posix.system"])


def test_a_version_may_trust_estimator_types_beyond_the_allow_list():
    model = ImbalancedPipeline([("classify", LogisticRegression())]).fit(FRAME[["x"]], LABELS)
    data = skops_io.dumps(model)
    extra = skops_io.get_untrusted_types(data=data)
    assert extra == ["imblearn.pipeline.Pipeline"]

    with pytest.raises(ArtifactIntegrityError):
        load_model(data)
    loaded = load_model(data, trusted=extra)

    expected = model.predict_proba(FRAME[["x"]])
    np.testing.assert_array_equal(loaded.predict_proba(FRAME[["x"]]), expected)
