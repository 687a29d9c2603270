"""The API tier's fixtures beyond every tier's: the trained loans home (``loans_data.py``), an
app over the trained example home with its key store, and an app serving a model with a
category and a nullable number."""

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from fastapi.testclient import TestClient

from conftest import FAST_TRAIN, make_registry
from loans_data import loans_home, loans_trained  # noqa: F401 - fixtures, used by name
from tabops.config import Settings
from tabops.database import create_database_engine
from tabops.project import load_project
from tabops.schema import infer_schema
from tabops.security.keys import KeyStore
from tabops.server.app import create_app
from tabops.training.register import train_project


@pytest.fixture
def keyed(home: Path) -> Iterator[tuple[TestClient, KeyStore]]:
    """A client of an app over a copy of the trained home, and the key store it reads at once."""
    app = create_app(Settings(home=home, security={"project_roots": [home.parent]}))
    app.state.policy.refresh_seconds = 0  # keys created beside the app count at once
    with TestClient(app) as client:
        yield client, KeyStore(create_database_engine(Settings(home=home).metadata_url))


COLOURS = ["blue", "green", "red"]


@pytest.fixture(scope="module")
def colours(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """An app serving a model with a category and a nullable number beside plain numbers."""
    rng = np.random.default_rng(5)
    rows = 300
    colour = rng.choice(COLOURS, size=rows)
    gap = rng.normal(size=rows)
    gap[rng.random(rows) < 0.2] = np.nan
    amount = rng.normal(50.0, 20.0, size=rows)
    logit = 0.05 * (amount - 50) + 1.5 * (colour == "red") - np.nan_to_num(gap)
    frame = pd.DataFrame({"amount": amount, "colour": colour, "gap": gap})
    frame["y"] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    folder = tmp_path_factory.mktemp("colours") / "project"
    folder.mkdir()
    frame.to_csv(folder / "colours.csv", index=False)
    project = {"name": "colours", "data": "colours.csv", "target": "y", "positive_class": 1}
    project["class_names"] = {"0": "calm", "1": "loud"}
    project["schema"] = infer_schema(frame, "y").spec.model_dump(mode="json", exclude_none=True)
    (folder / "tabops.yaml").write_text(yaml.safe_dump({**project, "train": FAST_TRAIN}))
    home = tmp_path_factory.mktemp("colours-home")
    train_project(*load_project(folder), make_registry(home))
    with TestClient(create_app(Settings(home=home))) as served:
        yield served
