"""The UI's foundation through the real app: login sessions, CSRF, the overview, error pages."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.ui_page import Page
from conftest import SEED_REQUEST
from tabops.config import Settings
from tabops.database import create_database_engine
from tabops.monitoring.alerts import RuleCheck
from tabops.monitoring.log import PredictionLog
from tabops.monitoring_rules import AlertRule
from tabops.security.keys import KeyStore
from tabops.server.app import create_app

MODEL = "heart-failure"


def ui_app(home: Path, base_url: str = "http://testserver", **settings: Any) -> TestClient:
    app = create_app(Settings(home=home, **settings))
    app.state.policy.refresh_seconds = 0  # keys created beside the app count at once
    return TestClient(app, base_url=base_url)


@pytest.fixture
def keys(home: Path) -> KeyStore:
    return KeyStore(create_database_engine(Settings(home=home).metadata_url))


@pytest.fixture
def ui(home: Path) -> Iterator[TestClient]:
    with ui_app(home) as client:
        yield client


def log_in(client: TestClient, token: str, next_path: str = "/ui") -> Any:
    form = client.get("/ui/login", params={"next": next_path})
    assert form.status_code == 200
    return client.post(
        "/ui/login",
        data={"key": token, "csrf": Page(form.text).forms[0]["csrf"], "next": next_path},
        follow_redirects=False,
    )


def test_the_root_leads_to_the_ui(ui):
    answer = ui.get("/", follow_redirects=False)
    assert answer.status_code in (303, 307)
    assert answer.headers["location"] == "/ui"


def test_an_open_server_shows_the_overview_without_login_and_says_so(ui):
    page = ui.get("/ui")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assert MODEL in page.text
    assert "no login needed" in page.text
    assert f'href="/ui/models/{MODEL}/predict"' in page.text
    assert "Log out" not in page.text
    # Only this server's own scripts and styles; no framing.
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "style-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert page.headers["x-frame-options"] == "DENY"
    # Going to the login page on an open server leads straight on.
    assert ui.get("/ui/login", follow_redirects=False).headers["location"] == "/ui"


def test_the_overview_shows_served_version_status_traffic_and_alerts(ui):
    assert ui.post(f"/v1/models/{MODEL}/predict", content=SEED_REQUEST).status_code == 200
    log: PredictionLog = ui.app.state.prediction_log
    log.flush()
    page = ui.get("/ui").text
    assert "version 1" in page
    assert "<code>production</code> → 1" in page
    assert "1 prediction / 24 h" in page
    assert "no alerts" in page
    assert "roc_auc" in page


def test_the_overview_counts_firing_alerts(ui):
    rule = AlertRule(metric="psi", feature="*", above=0.2)
    checks = [
        RuleCheck(rule, "24h", feature, value, 500, 0, value > 0.2)
        for feature, value in (("age", 0.5), ("time", 0.4), ("sex", 0.1))
    ]
    ui.app.state.watch.alerts.apply(MODEL, 1, checks, is_sent=False)
    assert "2 alerts firing" in ui.get("/ui").text


def test_pages_need_a_login_once_keys_exist(ui, keys):
    keys.create("reader", "read")
    answer = ui.get("/ui", params={"a": "b"}, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/login?next=%2Fui%3Fa%3Db"
    form = ui.get(answer.headers["location"])
    assert form.status_code == 200
    assert '<label for="key">API key</label>' in form.text
    assert 'type="password" id="key" name="key"' in form.text


def test_login_with_a_read_key_shows_the_models_and_sets_a_strict_cookie(ui, keys):
    _key, token = keys.create("reader", "read")
    answer = log_in(ui, token)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui"
    cookie = next(c for c in answer.headers.get_list("set-cookie") if "tabops_session=" in c)
    flags = cookie.lower()
    assert "httponly" in flags
    assert "samesite=strict" in flags
    assert "path=/ui" in flags
    assert "secure" not in flags  # plain http here
    assert token not in cookie
    page = ui.get("/ui")
    assert page.status_code == 200
    assert MODEL in page.text
    assert "reader" in page.text
    assert "Log out" in page.text
    # A read key may not predict: the overview offers no predict link.
    assert f"/ui/models/{MODEL}/predict" not in page.text
    # The key is nowhere in the database; only a hash of the session id is.
    home = ui.app.state.settings.home
    database = b"".join(path.read_bytes() for path in home.glob("*.db*"))  # WAL included
    assert b"ui_sessions" in database
    assert token.encode() not in database
    session_id = ui.cookies.get("tabops_session")
    assert session_id
    assert session_id.encode() not in database


def test_the_session_cookie_is_secure_over_https(home, keys):
    _key, token = keys.create("reader", "read")
    with ui_app(home, base_url="https://testserver") as client:
        answer = log_in(client, token)
        assert answer.status_code == 303
        cookie = next(c for c in answer.headers.get_list("set-cookie") if "tabops_session=" in c)
        assert "secure" in cookie.lower()
        assert client.get("/ui").status_code == 200


def test_a_wrong_key_gets_one_message_and_is_audited(ui, keys):
    _admin, admin_token = keys.create("ops", "admin")
    revoked, revoked_token = keys.create("old", "read")
    keys.revoke(revoked.id)
    messages = set()
    for wrong in ("nonsense", "tabops_0000000_" + "x" * 43, revoked_token, ""):
        answer = log_in(ui, wrong)
        assert answer.status_code == 401
        assert "tabops_session" not in ui.cookies
        messages.add(re.search(r'id="login-error">([^<]+)<', answer.text).group(1))
    assert len(messages) == 1
    entries = ui.get(
        "/v1/audit",
        params={"action": "POST /ui/login"},
        headers={"Authorization": f"Bearer {admin_token}"},
    ).json()
    assert [entry["outcome"] for entry in entries] == ["not_authenticated"] * 4
    assert all(entry["status"] == 401 for entry in entries)


def test_logout_ends_the_session(ui, keys):
    _key, token = keys.create("reader", "read")
    log_in(ui, token)
    page = ui.get("/ui")
    stolen = ui.cookies.get("tabops_session")
    answer = ui.post(
        "/ui/logout", data={"csrf": Page(page.text).forms[0]["csrf"]}, follow_redirects=False
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/login"
    assert "logged out" in ui.get("/ui/login").text
    assert ui.get("/ui", follow_redirects=False).status_code == 303
    # The session is gone on the server too, not just the cookie.
    ui.cookies.set("tabops_session", stolen, path="/ui")
    assert ui.get("/ui", follow_redirects=False).status_code == 303


def test_a_post_without_the_csrf_token_is_refused(ui, keys):
    _key, token = keys.create("reader", "read")
    log_in(ui, token)
    for data in ({}, {"csrf": "forged"}):
        answer = ui.post("/ui/logout", data=data, follow_redirects=False)
        assert answer.status_code == 403
        assert "text/html" in answer.headers["content-type"]
    assert ui.get("/ui").status_code == 200  # still logged in
    # The login form checks its own token too.
    answer = ui.post("/ui/login", data={"key": token}, follow_redirects=False)
    assert answer.status_code == 403


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/ui",
        "//evil.example/ui",
        "/\\evil.example",
        "/ui/../v1/keys",
        "/v1/models",
        "ui",
    ],
)
def test_next_never_leads_off_the_ui(ui, keys, target):
    _key, token = keys.create("reader", "read")
    answer = log_in(ui, token, next_path=target)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui"


def test_next_leads_to_the_page_asked_for(ui, keys):
    _key, token = keys.create("reader", "read")
    answer = log_in(ui, token, next_path=f"/ui/models/{MODEL}?v=2")
    assert answer.headers["location"] == f"/ui/models/{MODEL}?v=2"


def test_revoking_the_key_ends_its_session(ui, keys):
    keys.create("ops", "admin")  # with no key left, an open server would let anyone in
    key, token = keys.create("reader", "read")
    log_in(ui, token)
    assert ui.get("/ui").status_code == 200
    keys.revoke(key.id)
    answer = ui.get("/ui", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/ui/login")
    assert "session has ended" in ui.get(answer.headers["location"]).text


def test_a_key_limited_to_other_models_sees_none_of_them(ui, keys):
    _key, token = keys.create("other", "predict", models=["another-model"])
    log_in(ui, token)
    page = ui.get("/ui").text
    assert f'id="model-{MODEL}"' not in page
    assert "No model you may use" in page


def test_each_page_is_charged_to_the_key_rate(ui, keys):
    _key, token = keys.create("slow", "read", rate_per_second=0.01)
    log_in(ui, token)
    statuses = [ui.get("/ui").status_code for _ in range(3)]
    assert statuses[0] == 200
    assert 429 in statuses
    refused = ui.get("/ui")
    assert refused.status_code == 429
    assert "text/html" in refused.headers["content-type"]
    assert "retry-after" in refused.headers


def test_a_tabops_error_on_a_ui_path_renders_html_with_its_status(ui):
    answer = ui.get("/ui/nowhere")
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("text/html")
    assert "<h1>404" in answer.text
    # A form body that is no form: the error tree's 415, as an HTML page.
    answer = ui.post("/ui/logout", content=b"{}", headers={"content-type": "application/json"})
    assert answer.status_code == 415
    assert "unsupported_media_type" in answer.text
    assert "Traceback" not in answer.text
    # The API keeps its JSON answers.
    api = ui.get("/v1/models/unknown")
    assert api.status_code == 404
    assert api.json()["error"]["code"] == "model_not_found"


def test_static_assets_are_served_with_long_cache_headers(ui):
    page = ui.get("/ui").text
    css = re.search(r'href="(/ui/static/tabops\.css\?v=[0-9a-f]+)"', page).group(1)
    answer = ui.get(css)
    assert answer.status_code == 200
    assert "max-age=31536000" in answer.headers["cache-control"]
    assert answer.headers["content-type"].startswith("text/css")


def test_a_session_expires(home, keys):
    _key, token = keys.create("reader", "read")
    with ui_app(home) as client:
        client.app.state.ui_sessions.lifetime_seconds = 0
        log_in(client, token)
        assert client.get("/ui", follow_redirects=False).status_code == 303


def test_the_login_is_recorded_in_the_audit_log(ui, keys):
    admin, admin_token = keys.create("ops", "admin")
    log_in(ui, admin_token)
    entries = ui.get(
        "/v1/audit",
        params={"action": "POST /ui/login", "outcome": "ok"},
        headers={"Authorization": f"Bearer {admin_token}"},
    ).json()
    assert [entry["key_id"] for entry in entries] == [admin.id]
    assert entries[0]["status"] == 303
