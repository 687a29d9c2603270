"""The features page through the real app: an entity's stored features and its models.

The loans example (the entity tests' model, served by client id) is trained and
materialized once per test process (``loans_data.py``); the page's values and 404s are
compared with the API's.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.ui_page import Page
from loans_data import MODEL, VIEW, LoansHome
from tabops.config import Settings
from tabops.database import create_database_engine
from tabops.security.keys import KeyStore
from tabops.server.app import create_app

PAGE = "/ui/features"


@pytest.fixture
def ui(loans_home: LoansHome) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(home=loans_home.home))) as client:
        yield client


def stored_entity(client: TestClient) -> str:
    for entity_id in range(1000, 1120):
        if client.get(f"/v1/features/{VIEW}/{entity_id}").status_code == 200:
            return str(entity_id)
    raise AssertionError("no entity in the online store")


def shown(value: object) -> str:
    return "missing" if value is None else str(value)


@pytest.mark.slow
def test_an_entitys_features_are_shown_as_the_api_gives_them(ui):
    entity_id = stored_entity(ui)
    answer = ui.get(PAGE, params={"view": VIEW, "entity_id": entity_id})
    assert answer.status_code == 200, answer.text
    page = Page(answer.text)
    api = ui.get(f"/v1/features/{VIEW}/{entity_id}").json()
    assert page.cells == {name: shown(value) for name, value in api["features"].items()}
    assert page.attrs["view-select"]["name"] == "view"
    assert page.labels["view-select"] == "Feature view"
    assert page.labels["entity-id"] == "Entity id (client)"
    assert page.texts["event-time"].startswith(api["event_time"][:19])
    assert page.texts["materialized-at"].startswith(api["materialized_at"][:19])
    assert "ago)" in page.texts["materialized-at"]
    assert ("Features", PAGE) in page.links  # the nav shows the page, the store having views


@pytest.mark.slow
def test_the_models_of_the_view_predict_the_entity_as_the_entity_route_does(ui):
    entity_id = stored_entity(ui)
    page = Page(ui.get(PAGE, params={"view": VIEW, "entity_id": entity_id}).text)
    assert (MODEL, f"/ui/models/{MODEL}") in page.links
    [form] = page.forms  # no session on an open server: no log-out form in the nav
    assert form["action"] == f"/ui/models/{MODEL}/predict"
    assert form["entity_id"] == entity_id
    action = form.pop("action")
    answer = ui.post(action, data=form)
    assert answer.status_code == 200, answer.text
    api = ui.get(f"/v1/models/{MODEL}/entities/{entity_id}/prediction").json()
    shown_answer = Page(answer.text)
    assert float(shown_answer.attrs["result-probability"]["value"]) == api["probability"]


@pytest.mark.slow
def test_an_unknown_entity_gets_the_apis_404_beside_the_id(ui):
    answer = ui.get(PAGE, params={"view": VIEW, "entity_id": "999999"})
    assert answer.status_code == 404
    api = ui.get(f"/v1/features/{VIEW}/999999")
    assert api.status_code == 404
    [problem] = api.json()["error"]["details"]
    page = Page(answer.text)
    assert page.texts["entity-id-problem"] == problem["problem"]
    assert page.attrs["entity-id"]["aria-invalid"] == "true"
    assert page.attrs["entity-id"]["value"] == "999999"
    assert "features" not in page.attrs


@pytest.mark.slow
def test_a_read_key_sees_features_but_no_predict_button(loans_home):
    store = KeyStore(create_database_engine(Settings(home=loans_home.home).metadata_url))
    tokens = {scope: store.create(scope, scope)[1] for scope in ("read", "predict")}
    store.engine.dispose()
    with TestClient(create_app(Settings(home=loans_home.home))) as client:
        entity_id = stored_entity_with(client, tokens["read"])
        query = {"view": VIEW, "entity_id": entity_id}
        assert client.get(PAGE, params=query, follow_redirects=False).status_code == 303
        for scope, has_button in (("read", False), ("predict", True)):
            client.cookies.clear()
            log_in(client, tokens[scope])
            page = Page(client.get(PAGE, params=query).text)
            assert page.cells, scope
            predict_forms = [form for form in page.forms if form["action"].endswith("/predict")]
            assert bool(predict_forms) is has_button, scope
        refused = client.post(
            f"/ui/models/{MODEL}/predict", data={**predict_forms[0], "csrf": "forged"}
        )
        assert refused.status_code == 403


def stored_entity_with(client: TestClient, token: str) -> str:
    headers = {"authorization": f"Bearer {token}"}
    for entity_id in range(1000, 1120):
        if client.get(f"/v1/features/{VIEW}/{entity_id}", headers=headers).status_code == 200:
            return str(entity_id)
    raise AssertionError("no entity in the online store")


def log_in(client: TestClient, token: str) -> None:
    login = client.get("/ui/login?next=/ui/features")
    csrf = Page(login.text).forms[0]["csrf"]
    answer = client.post(
        "/ui/login", data={"key": token, "csrf": csrf, "next": PAGE}, follow_redirects=False
    )
    assert answer.status_code == 303, answer.text


def test_without_views_the_page_explains_how_to_materialize(tmp_path):
    with TestClient(create_app(Settings(home=tmp_path / "home", job_workers=0))) as client:
        answer = client.get(PAGE)
    assert answer.status_code == 200
    page = Page(answer.text)
    assert "tabops features materialize" in page.texts["no-views"]
    assert ("Features", PAGE) not in page.links
