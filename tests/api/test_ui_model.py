"""The model page through the real app: versions, aliases, leaderboard, promote and roll back."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.ui_page import Page
from conftest import SEED_REQUEST, make_registry
from tabops.config import Settings
from tabops.database import create_database_engine
from tabops.registry.tags import VersionTags
from tabops.registry.versions import ModelRegistry
from tabops.security.keys import KeyStore
from tabops.server.app import create_app

MODEL = "heart-failure"
PAGE = f"/ui/models/{MODEL}"
_TAGS = re.compile(r"<[^>]+>")


def text_of(page: str) -> str:
    """The page's text as a reader sees it: tags dropped, entities decoded, spaces joined."""
    return " ".join(html.unescape(_TAGS.sub(" ", page)).split())


def row_of(page: str, element_id: str) -> str:
    """The text of the table row with that id."""
    found = re.search(rf'<tr id="{element_id}"[^>]*>(.*?)</tr>', page, re.DOTALL)
    assert found is not None, f"no row {element_id}"
    return text_of(found.group(1))


def add_second_version(registry: ModelRegistry) -> None:
    """Version 2: version 1's files again (a real, servable version), tagged 2.0."""
    first = registry.get_version(MODEL, 1)
    files = {name: registry.read_file(MODEL, 1, name) for name in first.manifest.files}
    registry.register(MODEL, files, first.manifest, first_alias=None)
    VersionTags(registry.store).add(MODEL, 2, ["2.0"])


def served_version(client: TestClient, headers: dict[str, str] | None = None) -> int:
    answer = client.post("/predict", content=SEED_REQUEST, headers=headers or {})
    assert answer.status_code == 200, answer.text
    version: int = answer.json()["version"]
    return version


def audit_entries(client: TestClient, headers: dict[str, str] | None = None) -> list[Any]:
    answer = client.get("/v1/audit", params={"limit": 1000}, headers=headers or {})
    assert answer.status_code == 200, answer.text
    entries: list[Any] = answer.json()
    return entries


def confirm(client: TestClient, path: str, **params: Any) -> tuple[str, dict[str, str]]:
    """The confirmation page's text and the fields its form posts."""
    page = client.get(path, params=params)
    assert page.status_code == 200, page.text
    [fields] = [form for form in Page(page.text).forms if form["action"] == path]
    del fields["action"]
    return text_of(page.text), fields


@pytest.fixture
def two_versions(home: Path) -> Path:
    add_second_version(make_registry(home))
    return home


@pytest.fixture
def ui(two_versions: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(home=two_versions))) as client:
        yield client


# The page ------------------------------------------------------------------------------------


def test_the_page_lists_versions_newest_first_with_metrics_gates_runtime_and_aliases(ui, home):
    manifest = make_registry(home).get_version(MODEL, 1).manifest
    page = ui.get(PAGE)

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.text.index('id="version-2"') < page.text.index('id="version-1"')
    first = row_of(page.text, "version-1")
    assert f"{manifest.metrics['roc_auc']:.3f}" in first
    assert f"{manifest.metrics['pr_auc']:.3f}" in first
    assert f"{manifest.metrics['f1']:.3f}" in first
    assert "1 passed" in first
    assert "onnxruntime" in first
    assert "trained" in first
    assert "production" in first
    assert manifest.created is not None
    assert manifest.created[:10] in first
    second = row_of(page.text, "version-2")
    assert "2.0" in second
    assert "production" not in second
    assert "production 1 none" in row_of(page.text, "alias-production")


def test_the_page_links_to_the_model_card_and_the_predict_page(ui):
    page = ui.get(PAGE).text

    card_link = f'href="{PAGE}/versions/1/card"'
    assert card_link in page
    assert f'href="{PAGE}/predict"' in page
    card = ui.get(f"{PAGE}/versions/1/card")
    assert card.status_code == 200
    assert "<html" in card.text
    assert "script-src" not in card.headers["content-security-policy"]  # the card runs none


def test_the_leaderboard_is_the_production_versions_unless_another_is_chosen(ui, home):
    manifest = make_registry(home).get_version(MODEL, 1).manifest
    default = text_of(ui.get(PAGE).text)

    assert "Version 1 (production): how it was chosen" in default
    for entry in manifest.leaderboard:
        assert entry["name"] in default
    assert f"{manifest.candidate} chosen" in default
    chosen = text_of(ui.get(PAGE, params={"version": "2"}).text)
    assert "Version 2: how it was chosen" in chosen
    assert ui.get(PAGE, params={"version": "9"}).status_code == 404


def test_an_unknown_model_is_a_404_html_page(ui):
    page = ui.get("/ui/models/no-such-model")

    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "no-such-model" in text_of(page.text)
    assert ui.get("/ui/models/no-such-model/versions/1/card").status_code == 404


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/promote?version=two", "version"),
        ("/promote?version=0", "version"),
        ("/promote?version=2&alias=not%20an%20alias", "alias"),
        ("/rollback?alias=" + "x" * 300, "alias"),
    ],
)
def test_a_bad_query_is_a_422_html_page_naming_the_field(ui, path, field):
    answer = ui.get(f"/ui/models/{MODEL}{path}")

    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("text/html")
    assert '<nav class="nav" aria-label="Main">' in answer.text
    problems = answer.text[answer.text.index('class="problems"') :]
    assert re.search(rf"<code>(query\.)?{field}</code>: \S", problems)


# Promote and roll back -------------------------------------------------------------------------


def test_promoting_through_the_confirmation_changes_the_version_predict_answers(ui):
    assert served_version(ui) == 1
    assert 'action="/ui/models/heart-failure/promote"' in ui.get(PAGE).text

    text, fields = confirm(ui, f"{PAGE}/promote", version=2, alias="production")
    assert "production : 1 → 2" in text
    assert served_version(ui) == 1  # reviewing changes nothing
    answer = ui.post(f"{PAGE}/promote", data=fields, follow_redirects=False)

    assert answer.status_code == 303
    assert answer.headers["location"] == PAGE
    assert "heart-failure@production: 1 → 2" in text_of(ui.get(PAGE).text)
    assert served_version(ui) == 2
    entry = audit_entries(ui)[0]
    assert entry["target"] == "heart-failure@production"
    assert entry["outcome"] == "ok"
    assert entry["action"] == "POST /ui/models/{name}/promote"


def test_promoting_to_a_new_alias_creates_it(ui):
    text, fields = confirm(ui, f"{PAGE}/promote", version=2, alias="staging")
    assert "staging : new alias → 2" in text

    assert ui.post(f"{PAGE}/promote", data=fields).status_code == 200

    assert ui.get(f"/v1/models/{MODEL}").json()["aliases"] == {"production": 1, "staging": 2}


@pytest.mark.slow  # loads both versions in an app of its own
def test_rolling_back_through_the_confirmation_returns_to_the_previous_version(two_versions):
    make_registry(two_versions).set_alias(MODEL, "production", 2)
    with TestClient(create_app(Settings(home=two_versions))) as ui:
        assert served_version(ui) == 2
        assert f'href="{PAGE}/rollback?alias=production"' in ui.get(PAGE).text

        text, fields = confirm(ui, f"{PAGE}/rollback", alias="production")
        assert "production : 2 → 1" in text
        answer = ui.post(f"{PAGE}/rollback", data=fields, follow_redirects=False)

        assert answer.status_code == 303
        assert served_version(ui) == 1
        assert "rolled back: 2 → 1" in text_of(ui.get(PAGE).text)
        assert audit_entries(ui)[0]["action"] == "POST /ui/models/{name}/rollback"
        # Nothing earlier to go back to now: no button, and the review says why.
        assert "/rollback?alias=production" not in ui.get(PAGE).text
        refused = ui.get(f"{PAGE}/rollback", params={"alias": "production"})
        assert refused.status_code == 409
        assert "no earlier version" in text_of(refused.text)


def test_a_confirmation_reviewed_before_the_alias_moved_is_refused(ui):
    _text, fields = confirm(ui, f"{PAGE}/promote", version=2, alias="production")
    make_registry(ui.app.state.settings.home).set_alias(MODEL, "production", 2)
    make_registry(ui.app.state.settings.home).set_alias(MODEL, "production", 1)
    _text, rollback_fields = confirm(ui, f"{PAGE}/rollback", alias="production")
    make_registry(ui.app.state.settings.home).set_alias(MODEL, "production", 2)

    for path, data in (("promote", fields), ("rollback", rollback_fields)):
        fields_now = {**data, "current": "1"}
        refused = ui.post(f"{PAGE}/{path}", data=fields_now)
        assert refused.status_code == 409, path
        assert "review it again" in text_of(refused.text)
    assert ui.get(f"/v1/models/{MODEL}").json()["aliases"] == {"production": 2}


@pytest.mark.parametrize(
    "csrf", [pytest.param(None, id="missing"), pytest.param("forged", id="wrong")]
)
def test_a_confirmation_without_the_pages_csrf_token_is_refused(ui, csrf):
    _text, fields = confirm(ui, f"{PAGE}/promote", version=2, alias="production")
    fields.pop("csrf")
    if csrf is not None:
        fields["csrf"] = csrf

    refused = ui.post(f"{PAGE}/promote", data=fields)

    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("text/html")
    assert served_version(ui) == 1


@pytest.mark.parametrize(
    ("params", "status"),
    [
        pytest.param({"version": "9", "alias": "production"}, 404, id="unknown-version"),
        pytest.param({"version": "2", "alias": "Bad Alias"}, 422, id="invalid-alias"),
        pytest.param({"version": "two"}, 422, id="not-a-number"),
    ],
)
def test_reviewing_an_impossible_promotion_is_an_error_page(ui, params, status):
    page = ui.get(f"{PAGE}/promote", params=params)

    assert page.status_code == status
    assert page.headers["content-type"].startswith("text/html")
    assert 'name="current"' not in page.text  # no confirmation form


# Keys ------------------------------------------------------------------------------------------


def log_in(client: TestClient, token: str) -> None:
    form = client.get("/ui/login")
    answer = client.post(
        "/ui/login",
        data={"key": token, "csrf": Page(form.text).forms[0]["csrf"], "next": PAGE},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text


@pytest.fixture
def keyed(two_versions: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    store = KeyStore(create_database_engine(Settings(home=two_versions).metadata_url))
    tokens = {scope: store.create(f"{scope}-key", scope)[1] for scope in ("read", "admin")}
    store.engine.dispose()
    app = create_app(Settings(home=two_versions))
    app.state.policy.refresh_seconds = 0
    with TestClient(app) as client:
        yield client, tokens


def test_a_read_key_sees_no_promote_button_and_may_not_move_aliases(keyed):
    client, tokens = keyed
    admin = {"X-API-Key": tokens["admin"]}
    log_in(client, tokens["read"])
    page = client.get(PAGE)

    assert page.status_code == 200
    assert "Promote a version" not in page.text
    assert "/promote" not in page.text
    assert "/rollback" not in page.text
    assert client.get(f"{PAGE}/promote", params={"version": 2}).status_code == 403
    csrf = Page(page.text).forms[0]["csrf"]  # the logout form's: the session's own token
    for path in ("promote", "rollback"):
        data = {"csrf": csrf, "alias": "production", "version": "2", "current": "1"}
        refused = client.post(f"{PAGE}/{path}", data=data)
        assert refused.status_code == 403, path
        assert refused.headers["content-type"].startswith("text/html")
    assert served_version(client, admin) == 1
    refusal = audit_entries(client, admin)[0]
    assert (refusal["key_name"], refusal["outcome"]) == ("read-key", "not_authorized")


def test_an_admin_key_promotes_and_the_audit_log_names_it(keyed):
    client, tokens = keyed
    admin = {"X-API-Key": tokens["admin"]}
    log_in(client, tokens["admin"])

    _text, fields = confirm(client, f"{PAGE}/promote", version=2, alias="production")
    assert client.post(f"{PAGE}/promote", data=fields).status_code == 200

    assert served_version(client, admin) == 2
    entry = audit_entries(client, admin)[0]
    assert (entry["key_name"], entry["target"], entry["outcome"]) == (
        "admin-key",
        "heart-failure@production",
        "ok",
    )
