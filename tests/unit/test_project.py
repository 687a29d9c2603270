"""Loading, checking and saving the project file ``tabops.yaml``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tabops.errors import ProjectError
from tabops.project import PROJECT_FILE, Gate, load_project, save_project
from tabops.schema import Kind, Role


def read_document(folder: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((folder / PROJECT_FILE).read_text())
    return document


def write_document(folder: Path, document: dict[str, Any]) -> None:
    (folder / PROJECT_FILE).write_text(yaml.safe_dump(document, sort_keys=False))


def load_error(folder: Path) -> ProjectError:
    with pytest.raises(ProjectError) as caught:
        load_project(folder)
    return caught.value


def test_load_project_reads_the_heart_failure_example(project_dir):
    project, folder = load_project(project_dir)

    assert folder == project_dir
    assert project.name == "heart-failure"
    assert project.data == "heart_failure_clinical_records_dataset.csv"
    assert project.target == "DEATH_EVENT"
    assert project.positive_class == 1
    assert project.class_names == {"0": "survived", "1": "dead"}
    assert len(project.schema_.features) == 12
    assert project.schema_.column("DEATH_EVENT").role is Role.TARGET
    assert project.schema_.column("sex").kind is Kind.BOOLEAN
    assert project.train.candidates == ["logistic_regression", "hist_gradient_boosting"]
    assert project.gates == {"roc_auc": ">=0.75"}


def test_load_project_accepts_the_file_path_as_well_as_its_folder(project_dir):
    by_folder, _ = load_project(project_dir)
    by_file, folder = load_project(project_dir / PROJECT_FILE)

    assert by_file == by_folder
    assert folder == project_dir


def test_load_project_without_a_file_raises_project_error_pointing_to_init(tmp_path):
    error = load_error(tmp_path)

    assert "tabops init" in error.message


def test_load_project_with_invalid_yaml_raises_project_error(project_dir):
    (project_dir / PROJECT_FILE).write_text("name: [heart-failure\ntarget: DEATH_EVENT\n")

    error = load_error(project_dir)

    assert "not valid YAML" in error.message


@pytest.mark.parametrize("text", ["", "- a list\n- not a mapping\n", "just a string\n"])
def test_load_project_with_non_mapping_yaml_raises_project_error(project_dir, text):
    (project_dir / PROJECT_FILE).write_text(text)

    error = load_error(project_dir)

    assert "mapping" in error.message


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda doc: doc.update(colour="red"), "colour"),
        (lambda doc: doc["train"].update(epochs=3), "train.epochs"),
        (lambda doc: doc.update(name="Heart Failure"), "name"),
        (lambda doc: doc["train"].update(cv_folds=1), "train.cv_folds"),
        (lambda doc: doc["train"].update(candidates=["catboost"]), "train.candidates.0"),
        (lambda doc: doc.pop("target"), "target"),
    ],
    ids=[
        "unknown-key",
        "unknown-train-key",
        "bad-name",
        "cv-folds-1",
        "bad-candidate",
        "no-target",
    ],
)
def test_load_project_invalid_field_raises_project_error_naming_it(project_dir, change, field):
    document = read_document(project_dir)
    change(document)
    write_document(project_dir, document)

    error = load_error(project_dir)

    assert field in [problem.field for problem in error.problems]


def test_load_project_gate_that_is_not_a_comparison_is_refused(project_dir):
    document = read_document(project_dir)
    document["gates"] = {"roc_auc": "about 0.7"}
    write_document(project_dir, document)

    error = load_error(project_dir)

    [problem] = error.problems
    assert problem.field.startswith("gates")
    assert "roc_auc" in problem.problem
    assert "about 0.7" in problem.problem


def test_load_project_gate_on_unknown_metric_is_refused(project_dir):
    document = read_document(project_dir)
    document["gates"] = {"auc": ">=0.7"}
    write_document(project_dir, document)

    error = load_error(project_dir)

    [problem] = error.problems
    assert problem.field.startswith("gates")
    assert "unknown metric 'auc'" in problem.problem


def test_parsed_gates_keep_file_order_and_tolerate_spaces(heart_project):
    project = heart_project.model_copy(update={"gates": {"roc_auc": " >= 0.8 ", "brier": "<0.2"}})

    gates = project.parsed_gates()

    assert gates == [
        Gate(metric="roc_auc", operator=">=", value=0.8),
        Gate(metric="brier", operator="<", value=0.2),
    ]
    assert [str(gate) for gate in gates] == ["roc_auc >= 0.8", "brier < 0.2"]


def test_parsed_gates_of_the_example(heart_project):
    assert heart_project.parsed_gates() == [Gate(metric="roc_auc", operator=">=", value=0.75)]


@pytest.mark.parametrize(
    ("operator", "observed", "passes"),
    [
        (">=", 0.75, True),
        (">=", 0.7499, False),
        (">", 0.75, False),
        (">", 0.7501, True),
        ("<=", 0.75, True),
        ("<=", 0.7501, False),
        ("<", 0.75, False),
        ("<", 0.7499, True),
    ],
)
def test_gate_passes_compares_observed_value_with_its_operator(operator, observed, passes):
    gate = Gate(metric="roc_auc", operator=operator, value=0.75)

    assert gate.passes(observed) is passes


def test_save_project_round_trips_through_load_project(heart_project, tmp_path):
    project = heart_project.model_copy(update={"gates": {"roc_auc": ">=0.8", "f1": ">0.5"}})
    path = tmp_path / "nested" / PROJECT_FILE

    save_project(project, path)
    loaded, folder = load_project(path)

    assert loaded == project
    assert folder == path.parent
    assert sorted(p.name for p in path.parent.iterdir()) == [PROJECT_FILE]


def test_save_project_writes_the_schema_key_not_the_python_attribute(heart_project, tmp_path):
    path = tmp_path / PROJECT_FILE

    save_project(heart_project, path)

    document = yaml.safe_load(path.read_text())
    assert "schema" in document
    assert "schema_" not in document
    assert document["schema"]["columns"][0] == {
        "name": "age",
        "role": "feature",
        "kind": "numeric",
        "nullable": False,
        "minimum": 40.0,
        "maximum": 95.0,
    }


def test_save_project_overwrites_an_existing_file(heart_project, project_dir):
    path = project_dir / PROJECT_FILE
    changed = heart_project.model_copy(update={"name": "heart-failure-v2"})

    save_project(changed, path)

    assert load_project(path)[0].name == "heart-failure-v2"
