"""The predict page through the real app: the form a version's spec makes, and its answers.

Every prediction the page makes goes through the same endpoints as ``/v1`` with the page
user's context: the answers are compared with the API's, and found in the prediction log.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.ui_page import Page
from loans_data import MODEL as LOANS
from loans_data import VIEW, LoansHome
from tabops.config import Settings
from tabops.database import create_database_engine
from tabops.security.keys import KeyStore
from tabops.server.app import create_app

MODEL = "heart-failure"
PAGE = f"/ui/models/{MODEL}/predict"


def shown(value: Any) -> str:
    """A record's value as the form shows it."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@pytest.fixture
def ui(home: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(home=home))) as client:
        yield client


def spec_of(client: TestClient) -> list[dict[str, Any]]:
    manifest = client.get(f"/v1/models/{MODEL}/versions/production").json()["manifest"]
    return [c for c in manifest["feature_spec"]["columns"] if c.get("role", "feature") == "feature"]


def test_the_form_has_a_labelled_control_per_feature_filled_from_the_example(ui):
    answer = ui.get(PAGE)
    assert answer.status_code == 200
    page = Page(answer.text)
    example = ui.get(f"/v1/models/{MODEL}/example").json()["record"]
    features = spec_of(ui)
    assert set(page.features()) == {column["name"] for column in features}
    for column in features:
        control = page.controls[f"feature:{column['name']}"]
        assert page.labels[control["id"]] == column["name"]
        assert page.value(f"feature:{column['name']}") == shown(example[column["name"]])
        hint = page.texts[f"{control['id']}-hint"]
        if column["kind"] == "boolean":
            assert control["tag"] == "select"
            assert [value for value, _text, _chosen in control["options"]] == ["0", "1"]
        else:
            assert control["type"] == "number"
            assert control["step"] == ("1" if column["kind"] == "integer" else "any")
            assert hint.startswith(f"{column['kind']} · seen ")
    assert page.texts["feature-0-hint"] == "numeric · seen 40 \N{EN DASH} 95"  # age
    # The version selector offers the aliases and the numbers; production is chosen.
    versions = page.by_id["version-select"]["options"]
    assert ("production", "production (version 1)", True) in versions
    assert ("1", "version 1", False) in versions
    assert "result" not in page.attrs


def test_submitting_predicts_as_the_api_does_and_the_prediction_is_logged(ui):
    page = Page(ui.get(PAGE).text)
    record = ui.get(f"/v1/models/{MODEL}/example").json()["record"]
    api = ui.post(f"/v1/models/{MODEL}/predict", json=record).json()

    answer = ui.post(PAGE, data=page.form())
    assert answer.status_code == 200, answer.text
    result = Page(answer.text)
    probability = float(result.attrs["result-probability"]["value"])
    assert probability == api["probability"]
    assert result.texts["result-class"] == api["class_name"]
    assert result.texts["result-version"] == "1"
    prediction_id = result.texts["result-id"]
    assert prediction_id != api["prediction_id"]
    # The form keeps what was sent, for the next try.
    assert result.features() == page.features()

    ui.app.state.prediction_log.flush()
    logged = ui.get(f"/v1/predictions/{prediction_id}")
    assert logged.status_code == 200, logged.text
    assert logged.json()["probability"] == probability
    assert logged.json()["features"]["age"] == record["age"]


def test_the_probability_bar_is_drawn_to_scale_with_the_threshold_marked(ui):
    answer = Page(ui.post(PAGE, data=Page(ui.get(PAGE).text).form()).text)
    probability = float(answer.attrs["result-probability"]["value"])
    threshold = float(answer.attrs["result-threshold"]["value"])
    width = float(answer.attrs["bar"]["width"])
    assert float(answer.attrs["bar-fill"]["width"]) == pytest.approx(probability * width, abs=0.01)
    assert float(answer.attrs["bar-threshold"]["x1"]) == pytest.approx(threshold * width, abs=0.01)
    assert answer.texts["bar-title"].startswith(f"Probability {probability:.4f}")


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("age", "abc", "'abc' is not a number"),
        ("serum_sodium", "136.5", "136.5 is not a whole number"),
        ("anaemia", "", "is empty"),
        ("sex", "perhaps", "'perhaps' is not 0, 1, true or false"),
    ],
)
def test_a_bad_value_is_refused_beside_its_field_and_the_form_keeps_the_values(
    ui, field, value, problem
):
    page = Page(ui.get(PAGE).text)
    sent = {**page.form(), f"feature:{field}": value, "feature:time": "77"}
    answer = ui.post(PAGE, data=sent)
    assert answer.status_code == 422
    refused = Page(answer.text)
    control_id = refused.controls[f"feature:{field}"]["id"]
    assert refused.texts[f"{control_id}-problem"] == problem
    assert refused.controls[f"feature:{field}"]["aria-invalid"] == "true"
    assert f"{control_id}-problem" in refused.controls[f"feature:{field}"]["aria-describedby"]
    problems = [key for key in refused.texts if key.endswith("-problem")]
    assert problems == [f"{control_id}-problem"]
    assert refused.texts["form-error"].startswith("the record is invalid")
    assert refused.value("feature:time") == "77"
    if refused.controls[f"feature:{field}"]["tag"] == "input":
        assert refused.value(f"feature:{field}") == value
    assert "result" not in refused.attrs


def test_a_form_without_the_csrf_token_is_refused(ui):
    form = Page(ui.get(PAGE).text).form()
    missing = ui.post(PAGE, data={k: v for k, v in form.items() if k != "csrf"})
    assert missing.status_code == 403
    assert "text/html" in missing.headers["content-type"]
    assert "csrf" in missing.text
    assert ui.post(PAGE, data={**form, "csrf": "forged"}).status_code == 403
    assert ui.post(PAGE, data=form).status_code == 200


def test_an_earlier_version_or_an_unknown_one(ui):
    page = Page(ui.get(PAGE, params={"version": "1"}).text)
    assert page.value("version") == "1"
    answer = Page(ui.post(PAGE, data=page.form()).text)
    assert answer.texts["result-version"] == "1"
    unknown = ui.get(PAGE, params={"version": "7"})
    assert unknown.status_code == 404
    assert "has no version 7" in unknown.text
    assert ui.get("/ui/models/nothing-here/predict").status_code == 404


def test_a_random_example_fills_the_form_from_the_reference_rows(ui):
    rows = {
        tuple(
            sorted(
                (k, shown(v))
                for k, v in ui.get(f"/v1/models/{MODEL}/example", params={"index": index})
                .json()["record"]
                .items()
            )
        )
        for index in range(50)
    }
    drawn = set()
    for _ in range(12):
        page = Page(ui.get(PAGE, params={"example": "random"}).text)
        values = tuple(sorted(page.features().items()))
        assert values in rows
        drawn.add(values)
    assert len(drawn) > 1
    link = Page(ui.get(PAGE).text).attrs["random-example"]
    assert link["href"] == f"{PAGE}?example=random"
    example = ui.get(link["data-example-url"])
    assert example.status_code == 200
    assert example.json()["model"] == MODEL
    record = tuple(sorted((k, shown(v)) for k, v in example.json()["record"].items()))
    assert record in rows


# Keys ------------------------------------------------------------------------------------


def log_in(client: TestClient, token: str) -> None:
    form = Page(client.get("/ui/login").text)
    answer = client.post(
        "/ui/login",
        data={"key": token, "csrf": form.value("csrf"), "next": PAGE},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text


@pytest.fixture
def keyed(home: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    store = KeyStore(create_database_engine(Settings(home=home).metadata_url))
    made = {scope: store.create(scope, scope) for scope in ("read", "predict", "admin")}
    tokens = {scope: token for scope, (_key, token) in made.items()}
    tokens["predict_id"] = made["predict"][0].id
    # One request now and then: the bucket holds one, refilled every 1,000 s.
    tokens["limited"] = store.create("limited", "predict", rate_per_second=0.001)[1]
    store.engine.dispose()
    app = create_app(Settings(home=home))
    app.state.policy.refresh_seconds = 0
    with TestClient(app) as client:
        yield client, tokens


def test_a_predict_key_may_use_the_page_and_its_prediction_is_logged_as_its_own(keyed):
    client, tokens = keyed
    assert client.get(PAGE, follow_redirects=False).status_code == 303  # to the login
    log_in(client, tokens["predict"])
    page = Page(client.get(PAGE).text)
    answer = client.post(PAGE, data=page.form())
    assert answer.status_code == 200, answer.text
    prediction_id = Page(answer.text).texts["result-id"]
    client.app.state.prediction_log.flush()
    logged = client.get(
        f"/v1/predictions/{prediction_id}", headers={"X-API-Key": tokens["admin"]}
    ).json()
    assert logged["key_id"] == tokens["predict_id"]
    assert logged["route"] == "POST /ui/models/{name}/predict"
    example = client.get(page.attrs["random-example"]["data-example-url"])
    assert example.status_code == 200


def test_a_read_key_may_not_predict_from_the_page(keyed):
    client, tokens = keyed
    log_in(client, tokens["read"])
    refused = client.get(PAGE)
    assert refused.status_code == 403
    assert "this needs 'predict'" in html.unescape(refused.text)
    csrf = Page(client.get("/ui").text).value("csrf")
    posted = client.post(PAGE, data={"csrf": csrf, "feature:age": "60"})
    assert posted.status_code == 403


def test_the_page_is_rate_limited_as_the_api_is(keyed):
    client, tokens = keyed
    log_in(client, tokens["limited"])
    page = client.get(PAGE)
    assert page.status_code == 200
    limited = client.post(PAGE, data=Page(page.text).form())
    assert limited.status_code == 429
    assert "text/html" in limited.headers["content-type"]
    assert "result" not in Page(limited.text).attrs


# Models served by entity ------------------------------------------------------------------

LOANS_PAGE = f"/ui/models/{LOANS}/predict"


@pytest.fixture
def loans_ui(loans_home: LoansHome) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(home=loans_home.home))) as client:
        yield client


def stored_entity(client: TestClient) -> str:
    for entity_id in range(1000, 1120):
        if client.get(f"/v1/features/{VIEW}/{entity_id}").status_code == 200:
            return str(entity_id)
    raise AssertionError("no entity in the online store")


@pytest.mark.slow
def test_an_entity_model_asks_for_the_entity_and_predicts_as_the_entity_route(loans_ui):
    page = Page(loans_ui.get(LOANS_PAGE).text)
    entity = page.controls["entity_id"]
    assert page.labels[entity["id"]] == "Entity id (client)"
    overrides = page.features()
    assert set(overrides.values()) == {""}
    assert "random-example" not in page.attrs
    entity_id = stored_entity(loans_ui)

    answer = loans_ui.post(LOANS_PAGE, data={**page.form(), "entity_id": entity_id})
    assert answer.status_code == 200, answer.text
    api = loans_ui.get(f"/v1/models/{LOANS}/entities/{entity_id}/prediction").json()
    shown_answer = Page(answer.text)
    assert float(shown_answer.attrs["result-probability"]["value"]) == api["probability"]

    changed = {**page.form(), "entity_id": entity_id, "feature:amount": "399.5"}
    answer = Page(loans_ui.post(LOANS_PAGE, data=changed).text)
    api = loans_ui.post(
        f"/v1/models/{LOANS}/entities/{entity_id}/prediction",
        json={"overrides": {"amount": 399.5}},
    ).json()
    assert float(answer.attrs["result-probability"]["value"]) == api["probability"]
    assert "overridden: amount" in answer.texts["result"]
    assert answer.value("feature:amount") == "399.5"


@pytest.mark.slow
def test_an_unknown_entity_or_a_bad_override_is_refused_beside_its_field(loans_ui):
    form = Page(loans_ui.get(LOANS_PAGE).text).form()
    unknown = loans_ui.post(LOANS_PAGE, data={**form, "entity_id": "999999"})
    assert unknown.status_code == 404
    assert Page(unknown.text).texts["entity-id-problem"] == "'999999' is not in the online store"
    missing = loans_ui.post(LOANS_PAGE, data={**form, "entity_id": " "})
    assert missing.status_code == 422
    assert Page(missing.text).texts["entity-id-problem"] == "field required"

    entity_id = stored_entity(loans_ui)
    bad = loans_ui.post(LOANS_PAGE, data={**form, "entity_id": entity_id, "feature:age": "old"})
    assert bad.status_code == 422
    refused = Page(bad.text)
    control_id = refused.controls["feature:age"]["id"]
    assert refused.texts[f"{control_id}-problem"] == "'old' is not a number"
    assert refused.value("entity_id") == entity_id
