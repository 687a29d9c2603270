"""The candidate search tries the same settings on any machine; a time cap that cuts it says so."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from sklearn.base import clone

from conftest import EXAMPLE, copy_fast_example, make_registry
from tabops.model.files import CARD_FILE
from tabops.model.predictor import Predictor
from tabops.project import PROJECT_FILE, load_project
from tabops.schema import coerce_frame
from tabops.training.candidates import SEARCH_SPACES
from tabops.training.register import train_project
from tabops.training.search import CandidateSearch
from tabops.training.train import encode_target

MODEL = "heart-failure"
EXAMPLE_DATA = EXAMPLE / "heart_failure_clinical_records_dataset.csv"


def trained(tmp_path: Path, name: str, **train: object) -> Predictor:
    folder = copy_fast_example(tmp_path / name)
    path = folder / PROJECT_FILE
    document = yaml.safe_load(path.read_text())
    document["train"].update(train)
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    project, _ = load_project(folder)
    registry = make_registry(tmp_path / f"{name}-home")
    train_project(project, folder, registry)
    return Predictor.load(registry, MODEL)


def test_two_runs_try_the_same_settings_and_give_the_same_model(tmp_path, heart_frame):
    settings = {"search_settings": 3, "time_budget_s": 600}
    first = trained(tmp_path, "first", **settings)
    second = trained(tmp_path, "second", **settings)

    for predictor in (first, second):
        tried = {
            row["name"]: row["settings_tried"] for row in predictor.version.manifest.leaderboard
        }
        assert tried == {"logistic_regression": 3, "hist_gradient_boosting": 3}
        assert not any("time cap" in note for note in predictor.version.manifest.notes)
    assert first.version.manifest.params == second.version.manifest.params
    rows = heart_frame.drop(columns=["DEATH_EVENT"])
    assert first.score_frame(rows).tolist() == second.score_frame(rows).tolist()


def test_a_search_cut_by_the_time_cap_says_so_in_the_manifest_and_the_card(tmp_path):
    predictor = trained(tmp_path, "capped", time_budget_s=0.001)

    manifest = predictor.version.manifest
    # The very first setting always runs, so there is a model; nothing else may start.
    tried = {row["name"]: row["settings_tried"] for row in manifest.leaderboard}
    assert tried == {"logistic_regression": 1}
    [search, refit] = [note for note in manifest.notes if "time cap" in note]
    assert "logistic_regression 1 of 2 settings" in search
    assert "hist_gradient_boosting not tried" in search
    assert refit.startswith("the refit on ")
    assert "did not start" in refit
    assert set(manifest.stage_seconds) >= {"search", "fit", "evaluate"}
    registry = predictor.registry
    assert registry is not None
    card = registry.read_file(MODEL, predictor.version.version, CARD_FILE).decode()
    assert "Notes on this run" in card
    assert "time cap" in card


def test_voting_scored_from_its_members_answers_matches_cross_validating_it(heart_project):
    settings = heart_project.train.model_copy(
        update={"cv_folds": 3, "search_settings": 1, "imbalance": "class_weight"}
    )
    project = heart_project.model_copy(update={"train": settings})
    frame = pd.read_csv(EXAMPLE_DATA)
    y, _, _ = encode_target(frame, project)
    x = coerce_frame(frame, project.schema_)
    search = CandidateSearch(project, x, y, None, lambda _step, _done: None)
    members = [
        search.run(name, SEARCH_SPACES[name])
        for name in ("random_forest", "hist_gradient_boosting")
    ]

    voting = search.combine("voting", [member for member in members if member is not None])

    template = search.build(voting, search.fold_rows)
    fitted_oof = np.zeros(len(y))
    for fit_rows, score_rows in search.folds:
        model = clone(template).fit(x.iloc[fit_rows], y[fit_rows])
        fitted_oof[score_rows] = model.predict_proba(x.iloc[score_rows])[:, 1]
    np.testing.assert_allclose(voting.oof_probability, fitted_oof, atol=1e-12)
    assert voting.pr_auc_mean > 0
