"""The ``tabops`` command through Typer's CliRunner, against real files and registries."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import Result

from conftest import FAST_TRAIN, HEART_CSV, cli_output, make_registry
from tabops.config import get_settings
from tabops.project import PROJECT_FILE, load_project
from tabops.schema import Role

Invoke = Callable[..., Result]
MODEL = "heart-failure"


def assert_clean_failure(result: Result, code: int) -> None:
    """A non-zero exit with a message, never a Python traceback."""
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.output
    assert "error:" in result.output


def edit_project(folder: Path, **changes: Any) -> None:
    path = folder / PROJECT_FILE
    document = yaml.safe_load(path.read_text())
    document["train"].update(FAST_TRAIN)
    document.update(changes)
    path.write_text(yaml.safe_dump(document, sort_keys=False))


# init ----------------------------------------------------------------------------------------


@pytest.fixture
def messy_csv(tmp_path: Path) -> Path:
    """The heart data plus an id column and a constant column."""
    frame = pd.read_csv(HEART_CSV)
    frame.insert(0, "patient_id", np.arange(1000, 1000 + len(frame)))
    frame["hospital"] = "north"
    path = tmp_path / "data" / "Heart Records.csv"
    path.parent.mkdir()
    frame.to_csv(path, index=False)
    return path


def test_cli_init_writes_project_and_warns_about_excluded_columns(invoke, messy_csv, tmp_path):
    output = tmp_path / "project" / PROJECT_FILE

    result = invoke("init", messy_csv, "--target", "DEATH_EVENT", "-o", output)

    assert result.exit_code == 0, result.output
    printed = cli_output(result)
    assert "warning: column 'patient_id' excluded: id-like" in printed
    assert "warning: column 'hospital' excluded: constant" in printed
    assert "12 features" in printed
    project, folder = load_project(output)
    assert project.name == "heart-records"
    assert (folder / project.data).resolve() == messy_csv.resolve()
    assert project.schema_.column("patient_id").role is Role.EXCLUDED
    assert project.positive_class == 1


def test_cli_init_takes_name_positive_class_and_class_names(invoke, tmp_path):
    output = tmp_path / PROJECT_FILE

    result = invoke(
        "init",
        HEART_CSV,
        "--target",
        "DEATH_EVENT",
        "--name",
        "hf",
        "--positive",
        "1",
        "--class-names",
        "survived,dead",
        "-o",
        output,
    )

    assert result.exit_code == 0, result.output
    project, _ = load_project(output)
    assert project.name == "hf"
    assert project.class_names == {"0": "survived", "1": "dead"}


def test_cli_init_refuses_to_overwrite_without_force(invoke, tmp_path):
    output = tmp_path / PROJECT_FILE
    output.write_text("keep: me\n")

    refused = invoke("init", HEART_CSV, "--target", "DEATH_EVENT", "-o", output)

    assert_clean_failure(refused, 1)
    assert "--force" in cli_output(refused)
    assert output.read_text() == "keep: me\n"

    forced = invoke("init", HEART_CSV, "--target", "DEATH_EVENT", "-o", output, "--force")

    assert forced.exit_code == 0, forced.output
    assert load_project(output)[0].target == "DEATH_EVENT"


def test_cli_init_unknown_target_exits_1_naming_it(invoke, tmp_path):
    result = invoke("init", HEART_CSV, "--target", "outcome", "-o", tmp_path / PROJECT_FILE)

    assert_clean_failure(result, 1)
    assert "'outcome'" in cli_output(result)
    assert not (tmp_path / PROJECT_FILE).exists()


# validate ------------------------------------------------------------------------------------


def test_cli_validate_good_data_exits_0(invoke, project_dir):
    result = invoke("validate", HEART_CSV, "-p", project_dir)

    assert result.exit_code == 0, result.output
    assert "valid: 299 rows" in cli_output(result)


def test_cli_validate_corrupted_csv_exits_1_with_a_report(invoke, project_dir, tmp_path):
    frame = pd.read_csv(HEART_CSV)
    frame["ejection_fraction"] = frame["ejection_fraction"].astype(float)
    frame.loc[[5, 6], "ejection_fraction"] = 20.5
    frame.loc[7, "ejection_fraction"] = 500
    frame["serum_sodium"] = frame["serum_sodium"].astype(float)
    frame.loc[9, "serum_sodium"] = np.nan
    frame = frame.drop(columns=["smoking"]).assign(ward="B")
    corrupted = tmp_path / "corrupted.csv"
    frame.to_csv(corrupted, index=False)

    result = invoke("validate", corrupted, "-p", project_dir / PROJECT_FILE)

    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    printed = cli_output(result)
    assert "3 failed checks" in printed
    for column in ("ejection_fraction", "serum_sodium", "smoking"):
        assert column in printed
    assert "20.5" in printed
    assert "'ward' is not in the spec" in printed
    # Beyond the training range is noted, not refused: new data may go beyond a sample.
    assert "ejection_fraction: 1 row outside the training range [14, 80] (e.g. 500.0)" in printed


def test_cli_validate_notes_values_beyond_training_and_exits_0(invoke, project_dir, tmp_path):
    frame = pd.read_csv(HEART_CSV)
    frame.loc[[5, 6], "platelets"] = 2_000_000.0
    beyond = tmp_path / "beyond.csv"
    frame.to_csv(beyond, index=False)

    result = invoke("validate", beyond, "-p", project_dir / PROJECT_FILE)

    assert result.exit_code == 0, result.output
    printed = cli_output(result)
    assert "valid: 299 rows" in printed
    assert "platelets" in printed
    assert "2 rows" in printed
    assert "outside the training range" in printed


def test_cli_validate_without_project_exits_1(invoke, tmp_path):
    result = invoke("validate", HEART_CSV, "-p", tmp_path)

    assert_clean_failure(result, 1)
    assert "no project file" in cli_output(result)


# train ---------------------------------------------------------------------------------------


def test_cli_train_registers_version_one_then_models_list_shows_it(invoke, empty_cli, project_dir):
    edit_project(project_dir)

    trained = invoke("train", "-p", project_dir)

    assert trained.exit_code == 0, trained.output
    assert "gate passed: roc_auc >= 0.75" in cli_output(trained)
    assert f"registered {MODEL}:1 (production)" in cli_output(trained)

    listed = invoke("models", "list")

    assert listed.exit_code == 0, listed.output
    [row] = [line for line in listed.output.splitlines() if line.split()[:1] == [MODEL]]
    cells = row.split()  # model, version, aliases, created, ROC AUC, PR AUC, F1
    assert cells[:3] == [MODEL, "1", "production"]
    assert 0.75 <= float(cells[4]) <= 1.0


def test_cli_train_failing_gate_exits_3_naming_the_gate(invoke, empty_cli, project_dir):
    edit_project(project_dir, gates={"roc_auc": ">=0.999"})

    result = invoke("train", "-p", project_dir)

    assert_clean_failure(result, 3)
    assert "roc_auc >= 0.999" in cli_output(result)
    assert "nothing was registered" in cli_output(result)
    assert "no models registered yet" in cli_output(invoke("models", "list"))


def test_cli_train_invalid_project_exits_1_listing_problems(invoke, empty_cli, project_dir):
    edit_project(project_dir, gates={"roc_auc": "about 0.7"})

    result = invoke("train", "-p", project_dir)

    assert_clean_failure(result, 1)
    assert "about 0.7" in cli_output(result)


def test_cli_train_says_where_aliases_point_and_promotes_when_asked(
    invoke, trained_cli, project_dir
):
    edit_project(project_dir)

    kept = invoke("train", "-p", project_dir)
    promoted = invoke("train", "-p", project_dir, "--promote", "production")

    assert kept.exit_code == 0, kept.output
    assert f"registered {MODEL}:2 aliases of {MODEL}:" in cli_output(kept)  # no alias of its own
    assert (
        f"production -> 1 (unchanged; promote with: tabops models promote {MODEL} 2)"
        in cli_output(kept)
    )
    assert promoted.exit_code == 0, promoted.output
    assert f"registered {MODEL}:3 (production)" in cli_output(promoted)
    assert "production -> 3 (promoted, was 1)" in cli_output(promoted)
    assert make_registry(trained_cli).aliases(MODEL) == {"production": 3}


def test_cli_train_with_a_failing_gate_promotes_nothing(invoke, trained_cli, project_dir):
    edit_project(project_dir, gates={"roc_auc": ">=0.999"})

    result = invoke("train", "-p", project_dir, "--promote", "staging")

    assert_clean_failure(result, 3)
    assert "nothing was registered" in cli_output(result)
    registry = make_registry(trained_cli)
    assert registry.list_versions(MODEL) == [1]
    assert registry.aliases(MODEL) == {"production": 1}


def test_cli_train_refuses_an_invalid_alias_before_training(invoke, trained_cli, project_dir):
    result = invoke("train", "-p", project_dir, "--promote", "Prod")

    assert_clean_failure(result, 1)
    assert "invalid alias 'Prod'" in cli_output(result)
    assert "training" not in cli_output(result)
    assert make_registry(trained_cli).list_versions(MODEL) == [1]


# models ------------------------------------------------------------------------------------


def test_cli_models_list_fits_an_80_column_terminal(invoke, trained_cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")

    result = invoke("models", "list")

    assert result.exit_code == 0, result.output
    assert MODEL in result.output
    assert "production" in result.output
    assert "…" not in result.output


def test_cli_models_list_prints_whole_rows_when_output_is_not_a_terminal(
    invoke, trained_cli, monkeypatch
):
    long_name = "a-model-name-that-is-long-" + "x" * 37  # 63 characters, the longest allowed
    registry = make_registry(trained_cli)
    version = registry.get_version(MODEL)
    files = {f: registry.read_file(MODEL, 1, f) for f in version.manifest.files}
    registry.register(long_name, files, version.manifest)
    registry.set_alias(long_name, "a-long-alias-for-the-staging-env", 1)
    registry.set_default_model(long_name)
    monkeypatch.setenv("COLUMNS", "80")

    result = invoke("models", "list")  # CliRunner's output is not a terminal

    assert result.exit_code == 0, result.output
    assert "…" not in result.output
    for heading in ("model", "version", "aliases", "created", "ROC AUC", "PR AUC", "F1"):
        assert heading in result.output
    [row] = [line for line in result.output.splitlines() if line.split()[:1] == [long_name]]
    cells = row.split()
    assert cells[:4] == [long_name, "1", "a-long-alias-for-the-staging-env,", "production"]
    assert len(cells) == 8  # model, version, two aliases, created and three metrics
    assert all(0.0 <= float(cell) <= 1.0 for cell in cells[5:])
    assert f"default model (POST /predict): {long_name}\n" in result.output


def test_cli_models_list_with_no_models_says_so(invoke, empty_cli):
    result = invoke("models", "list")

    assert result.exit_code == 0, result.output
    assert "no models registered yet" in cli_output(result)


def test_cli_models_show_prints_metrics_threshold_and_features(invoke, trained_cli):
    result = invoke("models", "show", MODEL)

    assert result.exit_code == 0, result.output
    printed = cli_output(result)
    assert f"{MODEL}:1" in printed
    assert "threshold 0." in printed
    assert "roc_auc 0." in printed
    assert "features (12): age, anaemia" in printed
    assert "heart_failure_clinical_records_dataset.csv" in printed


def test_cli_models_show_json_prints_the_manifest(invoke, trained_cli):
    result = invoke("models", "show", f"{MODEL}:1", "--json")

    assert result.exit_code == 0, result.output
    assert '"version": 1' in result.output
    assert '"roc_auc"' in result.output


@pytest.mark.parametrize("ref", ["nope", f"{MODEL}:9", f"{MODEL}@staging", f"{MODEL}:²"])
def test_cli_models_show_unknown_reference_exits_1_cleanly(invoke, trained_cli, ref):
    assert_clean_failure(invoke("models", "show", ref), 1)


def test_cli_models_promote_points_an_alias_at_a_version(invoke, trained_cli):
    result = invoke("models", "promote", MODEL, "1", "--alias", "staging")

    assert result.exit_code == 0, result.output
    assert f"{MODEL}@staging -> version 1" in cli_output(result)
    listed = invoke("models", "list")
    assert "production, staging" in listed.output


def test_cli_models_promote_missing_version_exits_1(invoke, trained_cli):
    result = invoke("models", "promote", MODEL, "9")

    assert_clean_failure(result, 1)
    assert "no version 9" in cli_output(result)


def test_cli_models_rollback_without_history_exits_1_with_a_message(invoke, trained_cli):
    result = invoke("models", "rollback", MODEL)

    assert_clean_failure(result, 1)
    assert f"{MODEL}@production has no earlier version to roll back to" in cli_output(result)


def test_cli_models_list_names_the_default_model(invoke, trained_cli):
    result = invoke("models", "list")

    assert result.exit_code == 0, result.output
    assert f"default model (POST /predict): {MODEL}" in cli_output(result)


def test_cli_models_default_shows_then_changes_the_default_model(invoke, trained_cli):
    registry = make_registry(trained_cli)
    version = registry.get_version(MODEL)
    files = {f: registry.read_file(MODEL, 1, f) for f in version.manifest.files}
    registry.register("second", files, version.manifest)

    shown = invoke("models", "default")
    changed = invoke("models", "default", "second")

    assert shown.exit_code == 0, shown.output
    assert f"default model (POST /predict): {MODEL}" in cli_output(shown)
    assert changed.exit_code == 0, changed.output
    assert f"default model -> second (was {MODEL})" in cli_output(changed)
    assert "default model (POST /predict): second" in cli_output(invoke("models", "list"))


def test_cli_models_default_unknown_model_exits_1_listing_the_registered_ones(invoke, trained_cli):
    result = invoke("models", "default", "nope")

    assert_clean_failure(result, 1)
    assert f"model 'nope' not found; registered models: {MODEL}" in cli_output(result)
    assert f"default model (POST /predict): {MODEL}" in cli_output(invoke("models", "default"))


def test_cli_models_default_notes_the_setting_that_overrides_it(invoke, trained_cli, monkeypatch):
    monkeypatch.setenv("TABOPS_SERVING__DEFAULT_MODEL", "elsewhere")
    get_settings.cache_clear()

    result = invoke("models", "default", MODEL)

    assert result.exit_code == 0, result.output
    assert "the serving.default_model setting (elsewhere) overrides" in cli_output(result)
    listed = cli_output(invoke("models", "list"))
    assert "default model (POST /predict): elsewhere, set by the serving.default_model" in listed


# predict -------------------------------------------------------------------------------------


def test_cli_predict_writes_inputs_plus_probability_label_and_class_name(
    invoke, trained_cli, tmp_path
):
    output = tmp_path / "out.parquet"

    result = invoke("predict", "-m", f"{MODEL}@production", "-i", HEART_CSV, "-o", output)

    assert result.exit_code == 0, result.output
    assert "scored 299 rows" in cli_output(result)
    source = pd.read_csv(HEART_CSV)
    scored = pd.read_parquet(output)
    assert list(scored.columns) == [*source.columns, "probability", "label", "class_name"]
    assert len(scored) == 299
    pd.testing.assert_frame_equal(scored[source.columns], source, check_dtype=False)
    assert scored["probability"].between(0, 1).all()
    assert set(scored["label"]) == {0, 1}
    names = scored["label"].map({0: "survived", 1: "dead"})
    assert (scored["class_name"] == names).all()


def test_cli_predict_to_csv_by_version_number(invoke, trained_cli, tmp_path):
    output = tmp_path / "out.csv"

    result = invoke("predict", "-m", f"{MODEL}:1", "-i", HEART_CSV, "-o", output)

    assert result.exit_code == 0, result.output
    assert {"probability", "label", "class_name"} <= set(pd.read_csv(output).columns)


def test_cli_predict_missing_column_exits_1_naming_it(invoke, trained_cli, tmp_path):
    source = tmp_path / "no_age.csv"
    pd.read_csv(HEART_CSV).drop(columns=["age"]).to_csv(source, index=False)
    output = tmp_path / "out.parquet"

    result = invoke("predict", "-m", MODEL, "-i", source, "-o", output)

    assert_clean_failure(result, 1)
    assert "missing columns: age" in cli_output(result)
    assert not output.exists()


def test_cli_predict_scores_the_valid_rows_and_lists_a_non_number_cell_by_row_and_column(
    invoke, trained_cli, tmp_path
):
    frame = pd.read_csv(HEART_CSV)
    frame["time"] = frame["time"].astype(object)
    frame.loc[4, "time"] = "soon"
    source = tmp_path / "bad.csv"
    frame.to_csv(source, index=False)
    output = tmp_path / "out.csv"

    result = invoke("predict", "-m", MODEL, "-i", source, "-o", output)

    assert result.exit_code == 0, result.output
    assert "1 row(s) failed validation" in cli_output(result)
    assert "row 5.time: 'soon' is not a number" in cli_output(result)
    scored = pd.read_csv(output)
    assert len(scored) == 299
    assert scored["probability"].isna().tolist() == [index == 4 for index in range(299)]
    errors = pd.read_csv(tmp_path / "out.csv.errors.csv")
    assert errors.to_dict(orient="records") == [
        {"row": 5, "field": "time", "problem": "'soon' is not a number"}
    ]


def test_cli_predict_unknown_model_exits_1(invoke, trained_cli, tmp_path):
    result = invoke("predict", "-m", "nope", "-i", HEART_CSV, "-o", tmp_path / "out.parquet")

    assert_clean_failure(result, 1)
    assert "model 'nope' not found" in cli_output(result)
