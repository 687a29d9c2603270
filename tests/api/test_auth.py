"""API keys and scopes through the real app: who gets in, to what, and what is recorded.

The keys live in the app's SQLite metadata database; every request goes through the app,
so predict requests take the ASGI fast path and the rest FastAPI's routing.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import SEED_REQUEST, bearer
from tabops.config import Settings
from tabops.database import create_database_engine
from tabops.security.keys import KeyStore
from tabops.server.app import create_app

MODEL = "heart-failure"
PREDICT = f"/v1/models/{MODEL}/predict"


def open_app(home: Path, **security: Any) -> TestClient:
    settings = Settings(home=home, security={"project_roots": [home.parent], **security})
    app = create_app(settings)
    app.state.policy.refresh_seconds = 0  # keys created beside the app count at once
    return TestClient(app)


@pytest.fixture
def api(home: Path) -> Iterator[TestClient]:
    with open_app(home) as client:
        yield client


@pytest.fixture
def keys(home: Path) -> KeyStore:
    return KeyStore(create_database_engine(Settings(home=home).metadata_url))


def new_key(api: TestClient, token: str | None = None, **body: Any) -> dict[str, Any]:
    headers = bearer(token) if token else {}
    answer = api.post("/v1/keys", json={"name": "k", **body}, headers=headers)
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_a_loopback_server_without_keys_lets_anonymous_callers_in_and_says_so(api):
    assert api.post(PREDICT, content=SEED_REQUEST).status_code == 200
    health = api.get("/v1/health").json()
    assert health["auth"]["state"] == "open"
    assert "anonymous" in health["auth"]["detail"]


def test_the_first_key_ends_anonymous_access(api):
    admin = new_key(api, name="ops", scope="admin")
    assert admin["token"].startswith("tabops_")
    assert admin["prefix"] in admin["token"]
    refused = api.post(PREDICT, content=SEED_REQUEST)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Bearer")
    assert refused.json()["error"]["code"] == "not_authenticated"
    assert api.post(PREDICT, content=SEED_REQUEST, headers=bearer(admin["token"])).is_success
    assert api.get("/v1/health", headers={"X-API-Key": admin["token"]}).json()["auth"] == {
        "state": "keys",
        "detail": "every request needs an API key (healthz and readyz excepted)",
    }


def test_liveness_and_readiness_stay_open_when_keys_exist(api, keys):
    keys.create("ops", "admin")
    assert api.get("/healthz").status_code == 200
    assert api.get("/readyz").status_code == 200


def test_unknown_malformed_and_revoked_keys_get_one_answer(api, keys):
    _key, token = keys.create("ops", "admin")
    other, other_token = keys.create("old", "predict")
    keys.revoke(other.id)
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    messages = set()
    for candidate in (forged, "tabops_", "not-a-key", other_token):
        answer = api.post(PREDICT, content=SEED_REQUEST, headers=bearer(candidate))
        assert answer.status_code == 401
        messages.add(answer.json()["error"]["message"])
    assert messages == {"the API key is not valid"}


def test_an_expired_key_is_refused_and_named(api, keys):
    key, token = keys.create("temp", "predict", expires=datetime.now(UTC) - timedelta(seconds=1))
    answer = api.post(PREDICT, content=SEED_REQUEST, headers=bearer(token))
    assert answer.status_code == 401
    assert key.prefix in answer.json()["error"]["message"]


@pytest.mark.parametrize(
    ("scope", "read", "predict", "admin"),
    [("read", 200, 403, 403), ("predict", 200, 200, 403), ("admin", 200, 200, 200)],
)
def test_each_scope_includes_the_ones_before_it(api, keys, scope, read, predict, admin):
    _key, token = keys.create("caller", scope)
    headers = bearer(token)
    assert api.get(f"/v1/models/{MODEL}", headers=headers).status_code == read
    assert api.post(PREDICT, content=SEED_REQUEST, headers=headers).status_code == predict
    assert api.get("/v1/keys", headers=headers).status_code == admin
    if predict == 403:
        refused = api.post(PREDICT, content=SEED_REQUEST, headers=headers)
        assert 'error="insufficient_scope"' in refused.headers["www-authenticate"]
        assert "needs 'predict'" in refused.json()["error"]["message"]


def test_a_key_limited_to_models_sees_and_uses_only_those(api, keys):
    _key, token = keys.create("partner", "predict", models=["another-model"])
    headers = bearer(token)
    refused = api.post(PREDICT, content=SEED_REQUEST, headers=headers)
    assert refused.status_code == 403
    assert MODEL in refused.json()["error"]["message"]
    assert api.post("/predict", content=SEED_REQUEST, headers=headers).status_code == 403
    assert api.get("/v1/models", headers=headers).json() == []
    _key, everything = keys.create("all", "read")
    assert [m["name"] for m in api.get("/v1/models", headers=bearer(everything)).json()] == [MODEL]


def test_a_key_over_its_rate_is_told_when_to_retry(api, keys):
    _key, token = keys.create("slow", "predict", rate_per_second=0.01)
    headers = bearer(token)
    assert api.post(PREDICT, content=SEED_REQUEST, headers=headers).status_code == 200  # burst 1
    limited = api.post(PREDICT, content=SEED_REQUEST, headers=headers)
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "rate_limited"
    assert 90 <= int(limited.headers["retry-after"]) <= 100
    _other, other_token = keys.create("other", "predict", rate_per_second=0.01)
    assert api.post(PREDICT, content=SEED_REQUEST, headers=bearer(other_token)).is_success


def test_keys_are_created_listed_and_revoked_over_the_api_without_their_tokens(api):
    admin = new_key(api, name="ops", scope="admin")
    headers = bearer(admin["token"])
    partner = new_key(api, admin["token"], name="partner", scope="predict", expires="30d")
    listed = api.get("/v1/keys", headers=headers)
    assert [key["name"] for key in listed.json()] == ["ops", "partner"]
    assert admin["token"] not in listed.text
    assert partner["token"] not in listed.text
    assert "hash" not in listed.json()[0]
    assert api.delete(f"/v1/keys/{partner['id']}", headers=headers).status_code == 204
    assert (
        api.post(PREDICT, content=SEED_REQUEST, headers=bearer(partner["token"])).status_code == 401
    )
    statuses = {key["name"]: key["status"] for key in api.get("/v1/keys", headers=headers).json()}
    assert statuses == {"ops": "active", "partner": "revoked"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"scope": "root"}, "scope"),
        ({"scope": "admin", "models": [MODEL]}, "models"),
        ({"scope": "read", "expires": "yesterday"}, "expires"),
        ({"scope": "read", "expires": "2001-01-01"}, "expires"),
        ({"scope": "read", "rate_per_second": 0}, "rate_per_second"),
        ({"scope": "read", "models": []}, "models"),
        ({"scope": "read", "name": ""}, "name"),
    ],
)
def test_a_key_that_could_not_work_is_refused_naming_the_field(api, body, field):
    answer = api.post("/v1/keys", json={"name": "k", **body})
    assert answer.status_code == 422
    assert field in [detail["field"] for detail in answer.json()["error"]["details"]]


def test_refusals_and_admin_actions_are_in_the_audit_log(api):
    admin = new_key(api, name="ops", scope="admin")
    reader = new_key(api, admin["token"], name="reader", scope="read")
    api.post(PREDICT, content=SEED_REQUEST, headers={"X-Request-ID": "anon-1"})
    api.post(PREDICT, content=SEED_REQUEST, headers=bearer(reader["token"]))
    api.get("/v1/audit", headers=bearer(reader["token"]))
    entries = api.get("/v1/audit", headers=bearer(admin["token"])).json()
    seen = [(e["action"], e["outcome"], e["status"], e["key_name"]) for e in entries]
    assert seen == [
        ("GET /v1/audit", "not_authorized", 403, "reader"),
        ("predict", "not_authorized", 403, "reader"),
        ("predict", "not_authenticated", 401, None),
        ("POST /v1/keys", "ok", 201, "ops"),
        ("POST /v1/keys", "ok", 201, "anonymous"),
    ]
    anonymous = entries[2]
    assert anonymous["request_id"] == "anon-1"
    assert anonymous["target"] == MODEL
    only_refusals = api.get(
        "/v1/audit", params={"outcome": "not_authenticated"}, headers=bearer(admin["token"])
    )
    assert [e["request_id"] for e in only_refusals.json()] == ["anon-1"]


def test_auth_off_lets_everyone_in_even_with_keys(home, keys):
    keys.create("ops", "admin")
    with open_app(home, auth="off") as api:
        assert api.post(PREDICT, content=SEED_REQUEST).status_code == 200
        assert api.get("/v1/keys").status_code == 200
        assert api.get("/v1/health").json()["auth"]["state"] == "off"


def test_a_server_off_loopback_without_keys_lets_nobody_in(home):
    settings = Settings(home=home, serving={"host": "0.0.0.0"})  # never bound
    with TestClient(create_app(settings)) as api:
        assert api.post(PREDICT, content=SEED_REQUEST).status_code == 401
        assert api.get("/healthz").status_code == 200


def test_an_insecure_server_off_loopback_lets_anonymous_in_until_a_key_exists(home):
    settings = Settings(home=home, serving={"host": "0.0.0.0"}, security={"insecure": True})
    with TestClient(create_app(settings)) as api:
        assert api.post(PREDICT, content=SEED_REQUEST).status_code == 200


def test_a_caller_sees_only_its_own_jobs_and_an_admin_sees_every_job(api, keys):
    _admin, admin = keys.create("ops", "admin")
    _first, first = keys.create("first", "predict")
    _second, second = keys.create("second", "predict")
    record = {
        "records": [api.get(f"/v1/models/{MODEL}/example", headers=bearer(admin)).json()["record"]]
    }
    submitted = api.post(f"/v1/models/{MODEL}/jobs", json=record, headers=bearer(first))
    assert submitted.status_code == 202, submitted.text
    job = submitted.json()["status_url"]
    assert api.get(job, headers=bearer(first)).status_code == 200
    hidden = api.get(job, headers=bearer(second))
    assert hidden.status_code == 404
    assert hidden.json()["error"]["code"] == "job_not_found"
    assert api.get(f"{job}/result", headers=bearer(second)).status_code == 404
    assert api.delete(job, headers=bearer(second)).status_code == 404
    assert api.get("/v1/jobs", headers=bearer(second)).json() == []
    assert len(api.get("/v1/jobs", headers=bearer(first)).json()) == 1
    assert len(api.get("/v1/jobs", headers=bearer(admin)).json()) == 1
    assert api.get(job, headers=bearer(admin)).status_code == 200
