"""Every route of the app refuses anonymous callers once a key exists: the route table is
walked, so a route added later is covered without anyone remembering to add it here."""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

from tabops.config import Settings
from tabops.database import create_database_engine
from tabops.security.keys import KeyStore
from tabops.server.app import create_app

OPEN = {
    "/healthz",
    "/readyz",
    "/ping",
    "/health",
    "/v2/health/live",
    "/v2/health/ready",
    "/openapi.json",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
}
"""What stays open: liveness, readiness (MLflow's and the Open Inference Protocol's names for
them too) and the API's description."""
ADMIN_ONLY = re.compile(
    r"^/v1/(keys|audit|train)\b|^/v1/models/[^/]+/(monitoring/check|aliases/.*)$"
)
ADMIN_POSTS = re.compile(r"^/v1/models/[^/]+/versions$")
"""Paths whose POST needs an admin key (importing a version), whatever reading them needs."""
PARAMETERS = {
    "name": "heart-failure",
    "version": "1",
    "alias": "staging",
    "job_id": "0" * 32,
    "key_id": "0" * 16,
    "view": "view",
    "entity_id": "1",
    "prediction_id": "0" * 32,
}


def operations() -> list[tuple[str, str]]:
    """Every method and concrete path of the app's routes (the fast path's included)."""
    with tempfile.TemporaryDirectory() as home:
        app = create_app(Settings(home=Path(home)))
        found = []
        for route in iter_route_contexts(app.routes):
            if route.path is None or route.methods is None:
                continue
            concrete = re.sub(r"\{(\w+)(:\w+)?\}", lambda m: PARAMETERS[m.group(1)], route.path)
            found.extend((method, concrete) for method in sorted(route.methods - {"HEAD"}))
    return found


ALL_OPERATIONS = operations()
UI_OPERATIONS = [(m, p) for m, p in ALL_OPERATIONS if p == "/" or p.startswith("/ui")]
"""The web pages: a session cookie, not an API key header, lets a caller in."""
OPERATIONS = [operation for operation in ALL_OPERATIONS if operation not in UI_OPERATIONS]


def error_code(body: dict) -> str:
    """The code of an error answer, in the API's shape or MLflow's (its scoring routes)."""
    return body["error_code"] if "error_code" in body else body["error"]["code"]


def is_admin_only(method: str, path: str) -> bool:
    """Whether only an admin key may call this operation."""
    return bool(ADMIN_ONLY.match(path) or (method == "POST" and ADMIN_POSTS.match(path)))


@pytest.fixture(scope="module")
def guarded(
    trained_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """An app whose database holds a read key, a predict key and an admin key."""
    home = tmp_path_factory.mktemp("guarded") / "home"
    shutil.copytree(trained_home, home)
    keys = KeyStore(create_database_engine(Settings(home=home).metadata_url))
    tokens = {scope: keys.create(scope, scope)[1] for scope in ("read", "predict", "admin")}
    with TestClient(create_app(Settings(home=home))) as client:
        yield client, tokens


def test_the_route_table_was_read():
    paths = {path for _method, path in OPERATIONS}
    assert {"/predict", "/v1/train", "/v1/keys", "/v1/audit", "/v1/jobs"} <= paths
    assert {"/v2", "/v2/health/ready", "/v2/models/heart-failure/infer"} <= paths
    assert len(OPERATIONS) > 20
    assert ("GET", "/ui/login") in UI_OPERATIONS


@pytest.mark.parametrize(("method", "path"), UI_OPERATIONS, ids=lambda value: str(value))
def test_a_page_without_a_session_leads_to_the_login_whatever_key_is_sent(guarded, method, path):
    client, tokens = guarded
    headers = {"Authorization": f"Bearer {tokens['admin']}"}  # pages ignore API key headers
    answer = client.request(method, path, headers=headers, follow_redirects=False)
    if method == "GET" and path in ("/", "/ui/login"):
        assert answer.status_code in (200, 303, 307), answer.text
    elif method == "GET":
        assert answer.status_code == 303, answer.text
        assert answer.headers["location"].startswith("/ui/login")
    else:  # a form post without a session or its CSRF token is refused, HTML not JSON
        if answer.status_code == 303:
            assert answer.headers["location"].startswith("/ui/login")
        else:
            assert 400 <= answer.status_code < 500, answer.text
            assert answer.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=lambda value: str(value))
def test_an_anonymous_request_is_refused_on_every_guarded_route(guarded, method, path):
    client, _tokens = guarded
    answer = client.request(method, path, content=b"{}")
    if path in OPEN or path.startswith("/docs"):
        assert answer.status_code < 400 or answer.status_code == 503
    else:
        assert answer.status_code == 401, answer.text
        body = answer.json()
        if isinstance(body.get("error"), str):  # the Open Inference Protocol's: a message
            assert "API key" in body["error"]
        else:
            assert error_code(body) in ("not_authenticated", "UNAUTHENTICATED")
        assert answer.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=lambda value: str(value))
def test_a_read_key_reaches_no_predict_or_admin_route(guarded, method, path):
    client, tokens = guarded
    answer = client.request(
        method, path, content=b"{}", headers={"Authorization": f"Bearer {tokens['read']}"}
    )
    if path in OPEN or path.startswith("/docs"):
        return
    reads = method == "GET" and not is_admin_only(method, path) and "/jobs" not in path
    reads = reads and not path.endswith("/prediction")
    if reads:
        assert answer.status_code != 403, answer.text
    else:
        assert answer.status_code == 403, answer.text


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=lambda value: str(value))
def test_a_predict_key_reaches_no_admin_route(guarded, method, path):
    client, tokens = guarded
    answer = client.request(
        method, path, content=b"{}", headers={"Authorization": f"Bearer {tokens['predict']}"}
    )
    if is_admin_only(method, path):
        assert answer.status_code == 403, answer.text
    else:
        assert answer.status_code not in (401, 403), answer.text
