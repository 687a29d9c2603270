import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tabops.errors import DataError, ModelImportError
from tabops.schema import Kind, Role
from tabops.training.import_schema import import_spec, model_columns
from tabops.training.import_source import ModelSource, SignatureColumn, read_model_source

MODEL_FILE = Path("model.pkl")
LEFT_OUT = "sample column(s) the model does not take were left out"
SAMPLE = pd.DataFrame(
    {
        "client_id": np.arange(100),
        "age": np.arange(100) % 50 + 20,
        "city": [f"city {i}" for i in range(100)],  # 100 values: free text to inference
        "owns_car": np.arange(100) % 2,
        "status": np.arange(100) % 3 == 0,
    }
)


def write_mlmodel(folder, document):
    folder.mkdir()
    (folder / "model.pkl").write_bytes(b"not read here")
    (folder / "MLmodel").write_text(yaml.safe_dump(document))
    return folder


def sklearn_flavor(**signature):
    document = {"flavors": {"sklearn": {"pickled_model": "model.pkl"}}}
    if signature:
        document["signature"] = signature
    return document


def test_feature_names_choose_the_columns_and_other_sample_columns_are_noted():
    layout = model_columns(ModelSource(file=MODEL_FILE), ["age", "city"], 2, SAMPLE, "status")

    assert layout.columns == ["age", "city"]
    assert not layout.as_array
    assert layout.notes == [f"{LEFT_OUT}: client_id, owns_car"]


def test_a_model_without_names_takes_the_sample_columns_besides_the_target():
    layout = model_columns(ModelSource(file=MODEL_FILE), None, 4, SAMPLE, "status")

    assert layout.columns == ["client_id", "age", "city", "owns_car"]
    assert layout.as_array


def test_a_width_other_than_the_named_columns_is_refused():
    with pytest.raises(ModelImportError, match="takes 3 columns") as caught:
        model_columns(ModelSource(file=MODEL_FILE), None, 3, SAMPLE, "status")

    assert caught.value.problems[0].field == "model"


def test_the_target_among_the_model_inputs_is_refused():
    with pytest.raises(ModelImportError, match="target") as caught:
        model_columns(ModelSource(file=MODEL_FILE), ["age", "status"], 2, SAMPLE, "status")

    assert [problem.field for problem in caught.value.problems] == ["target"]


def test_a_signature_naming_other_columns_than_the_model_is_refused_naming_each():
    source = ModelSource(
        file=None, inputs=(SignatureColumn("age", "long"), SignatureColumn("income", "double"))
    )

    with pytest.raises(ModelImportError) as caught:
        model_columns(source, ["age", "city"], 2, SAMPLE, None)

    assert {problem.field for problem in caught.value.problems} == {"income", "city"}


def test_spec_keeps_every_model_column_a_feature_whatever_inference_thinks():
    spec = import_spec(SAMPLE, ["client_id", "city", "owns_car"], "status")

    assert spec.feature_names == ["client_id", "city", "owns_car"]
    assert spec.column("client_id").kind is Kind.INTEGER
    assert spec.column("client_id").minimum == 0
    assert spec.column("city").kind is Kind.CATEGORICAL
    assert len(spec.column("city").categories or []) == 100
    assert spec.column("owns_car").kind is Kind.BOOLEAN
    assert spec.column("status").role is Role.TARGET


def test_spec_takes_the_signature_type_where_it_is_stricter_than_the_sample():
    typed = [SignatureColumn("owns_car", "double"), SignatureColumn("age", "string")]

    spec = import_spec(SAMPLE, ["owns_car", "age"], None, typed)

    assert spec.column("owns_car").kind is Kind.NUMERIC
    assert spec.column("age").kind is Kind.CATEGORICAL
    assert spec.column("age").categories == sorted({str(v) for v in SAMPLE["age"]})
    assert [column.name for column in spec.columns] == ["owns_car", "age"]


def test_spec_refuses_a_signature_number_where_the_sample_holds_text():
    with pytest.raises(ModelImportError, match="city") as caught:
        import_spec(SAMPLE, ["city"], None, [SignatureColumn("city", "double")])

    assert [problem.field for problem in caught.value.problems] == ["city"]


def test_spec_refuses_a_target_that_is_not_binary():
    with pytest.raises(DataError, match="two classes"):
        import_spec(SAMPLE.assign(group=np.arange(100) % 3), ["age"], "group")


def test_mlflow_signature_columns_are_read_in_order(tmp_path):
    inputs = [{"type": "long", "name": "age", "required": True}, {"type": "string", "name": "city"}]
    folder = write_mlmodel(
        tmp_path / "m", sklearn_flavor(inputs=json.dumps(inputs), outputs=None) | {"run_id": "r1"}
    )

    source = read_model_source(folder)

    assert source.inputs == (SignatureColumn("age", "long"), SignatureColumn("city", "string"))
    assert source.run_id == "r1"
    assert source.file == (folder / "model.pkl").resolve()


def test_mlflow_tensor_signature_gives_its_width(tmp_path):
    tensor = [{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 4]}}]
    folder = write_mlmodel(tmp_path / "m", sklearn_flavor(inputs=json.dumps(tensor)))

    source = read_model_source(folder)

    assert source.inputs is None
    assert source.tensor_width == 4


@pytest.mark.parametrize(
    ("document", "field"),
    [
        pytest.param({"flavors": {"python_function": {}}}, "MLmodel.flavors", id="no-sklearn"),
        pytest.param(sklearn_flavor(inputs="[not json"), "MLmodel.signature.inputs", id="json"),
        pytest.param(
            sklearn_flavor(inputs=json.dumps([{"type": "binary", "name": "photo"}])),
            "photo",
            id="binary-column",
        ),
        pytest.param(
            {"flavors": {"sklearn": {"pickled_model": "absent.pkl"}}},
            "MLmodel.flavors.sklearn.pickled_model",
            id="missing-file",
        ),
    ],
)
def test_unusable_mlflow_folders_are_refused_naming_the_key(tmp_path, document, field):
    folder = write_mlmodel(tmp_path / "m", document)

    with pytest.raises(ModelImportError) as caught:
        read_model_source(folder)

    assert [problem.field for problem in caught.value.problems] == [field]


def test_a_folder_without_mlmodel_is_refused(tmp_path):
    with pytest.raises(ModelImportError, match="MLmodel"):
        read_model_source(tmp_path)
