"""The API tier's fixtures beyond every tier's: the trained loans home (``loans_data.py``), and
an app over the trained example home with its key store."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from loans_data import loans_home, loans_trained  # noqa: F401 - fixtures, used by name
from tabops.config import Settings
from tabops.database import create_database_engine
from tabops.security.keys import KeyStore
from tabops.server.app import create_app


@pytest.fixture
def keyed(home: Path) -> Iterator[tuple[TestClient, KeyStore]]:
    """A client of an app over a copy of the trained home, and the key store it reads at once."""
    app = create_app(Settings(home=home, security={"project_roots": [home.parent]}))
    app.state.policy.refresh_seconds = 0  # keys created beside the app count at once
    with TestClient(app) as client:
        yield client, KeyStore(create_database_engine(Settings(home=home).metadata_url))
