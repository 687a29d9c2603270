"""What browsers get: security headers, CORS only when configured, no cross-site posts, docs."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from conftest import HEART_CSV
from tabops.config import Settings
from tabops.server.app import create_app
from tabops.server.browser import is_allowed_origin

MODEL = "heart-failure"
PREDICT = f"/v1/models/{MODEL}/predict"
JOBS = f"/v1/models/{MODEL}/jobs"
CARD = f"/v1/models/{MODEL}/versions/1/card"
UI = "https://ui.example"
EVIL = "https://evil.example"


@pytest.fixture
def record() -> dict:
    frame = pd.read_csv(HEART_CSV).drop(columns=["DEATH_EVENT"])
    records: list[dict] = json.loads(frame.head(1).to_json(orient="records"))
    return records[0]


@pytest.fixture
def cors_client(home: Path) -> Iterator[TestClient]:
    """The API with one origin allowed to call it from a page's script."""
    with TestClient(create_app(Settings(home=home, cors_origins=[f"{UI}/"]))) as client:
        yield client


class _Resources(HTMLParser):
    """What a page loads: script and stylesheet addresses, images, inline scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.loaded: list[str] = []
        self.images: list[str] = []
        self.inline_scripts: list[str] = []
        self._in_inline_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "script":
            if found.get("src"):
                self.loaded.append(found["src"] or "")
            else:
                self._in_inline_script = True
                self.inline_scripts.append("")
        elif tag == "link" and found.get("href"):
            self.loaded.append(found["href"] or "")
        elif tag == "img":
            self.images.append(found.get("src") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_inline_script = False

    def handle_data(self, data: str) -> None:
        if self._in_inline_script:
            self.inline_scripts[-1] += data


def resources(page: str) -> _Resources:
    parser = _Resources()
    parser.feed(page)
    return parser


def directives(policy: str) -> dict[str, list[str]]:
    parsed = {}
    for part in policy.split(";"):
        name, *sources = part.split()
        parsed[name] = sources
    return parsed


def test_every_answer_says_nosniff(client, record):
    answers = [
        client.get("/healthz"),
        client.get("/v1/models"),
        client.get("/v1/no-such-route"),
        client.post(PREDICT, json=record),  # the fast path
        client.post(PREDICT, json={"age": "old"}),  # an error on the fast path
        client.post(f"{PREDICT}?version=1&x=1", json=record),  # the FastAPI route
    ]
    assert [a.status_code for a in answers] == [200, 200, 404, 200, 422, 200]
    for answer in answers:
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert "content-security-policy" not in answer.headers


def test_an_unexpected_error_says_nosniff_too(home):
    app = create_app(Settings(home=home))

    def fail() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/fails", fail)
    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.get("/fails")
    assert answer.status_code == 500
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert "a bug" not in answer.text


def test_the_model_card_may_load_nothing_and_run_no_script(client):
    answer = client.get(CARD)
    assert answer.status_code == 200
    policy = directives(answer.headers["content-security-policy"])
    assert policy["default-src"] == ["'none'"]
    assert "script-src" not in policy
    assert policy["img-src"] == ["data:"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert answer.headers["x-content-type-options"] == "nosniff"
    # The card itself needs no more than the policy allows.
    page = resources(answer.text)
    assert page.images
    assert all(src.startswith("data:image/") for src in page.images)
    assert page.loaded == []
    assert page.inline_scripts == []


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_the_docs_load_every_asset_from_this_server(client, path):
    answer = client.get(path)
    assert answer.status_code == 200
    page = resources(answer.text)
    assert page.loaded
    for address in page.loaded:
        assert address.startswith("/docs/assets/"), address
        asset = client.get(address)
        assert asset.status_code == 200, address
        assert asset.content
    assert "cdn" not in answer.text
    assert "fonts.googleapis" not in answer.text
    policy = directives(answer.headers["content-security-policy"])
    assert policy["default-src"] == ["'none'"]
    assert "'self'" in policy["script-src"]
    assert "'unsafe-inline'" not in policy["script-src"]
    assert policy["connect-src"] == ["'self'"]
    assert answer.headers["x-frame-options"] == "DENY"


def test_the_swagger_page_allows_exactly_its_inline_script(client):
    answer = client.get("/docs")
    scripts = resources(answer.text).inline_scripts
    assert len(scripts) == 1
    assert "/openapi.json" in scripts[0]
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    sources = directives(answer.headers["content-security-policy"])["script-src"]
    assert sorted(sources) == sorted(["'self'", f"'sha256-{digest}'"])


def test_the_openapi_document_is_still_served(client):
    answer = client.get("/openapi.json")
    assert answer.status_code == 200
    assert PREDICT in str(answer.json()["paths"])


def test_without_cors_origins_no_page_may_read_an_answer(client):
    preflight = client.options(
        PREDICT, headers={"Origin": UI, "Access-Control-Request-Method": "POST"}
    )
    read = client.get("/v1/models", headers={"Origin": UI})
    assert read.status_code == 200
    for answer in (preflight, read):
        assert "access-control-allow-origin" not in answer.headers


def test_a_cross_site_form_cannot_submit_a_job(client):
    answer = client.post(
        JOBS,
        files={"file": ("rows.csv", HEART_CSV.read_bytes(), "text/csv")},
        headers={"Origin": EVIL},
    )
    assert answer.status_code == 403
    error = answer.json()["error"]
    assert error["code"] == "origin_not_allowed"
    assert error["details"][0]["field"] == "Origin"
    assert EVIL in error["details"][0]["problem"]
    assert "www-authenticate" not in answer.headers
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert client.get("/v1/jobs").json() == []


@pytest.mark.parametrize("origin", [EVIL, "null", "http://testserver.evil.example"])
def test_a_cross_site_form_cannot_predict_through_the_fast_path(client, origin):
    # A text/plain form can carry a JSON body; it needs no preflight.
    body = '{"age": 60, "x": "="}'
    answer = client.post(
        PREDICT, content=body, headers={"Origin": origin, "Content-Type": "text/plain"}
    )
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "origin_not_allowed"


def test_requests_from_this_server_or_without_origin_pass(client, record):
    same_site = client.post(PREDICT, json=record, headers={"Origin": "http://testserver"})
    no_origin = client.post(PREDICT, json=record)
    assert same_site.status_code == no_origin.status_code == 200
    assert same_site.json()["probability"] == no_origin.json()["probability"]


def test_reads_from_another_site_are_answered_but_not_shared(client):
    answer = client.get("/v1/models", headers={"Origin": EVIL})
    assert answer.status_code == 200
    assert "access-control-allow-origin" not in answer.headers


def test_a_configured_origin_gets_a_preflight_with_the_api_headers(cors_client):
    answer = cors_client.options(
        PREDICT,
        headers={
            "Origin": UI,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, x-api-key, content-type",
        },
    )
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == UI
    assert "POST" in answer.headers["access-control-allow-methods"]
    allowed = answer.headers["access-control-allow-headers"].lower()
    assert {"authorization", "x-api-key", "content-type"} <= set(re.split(r",\s*", allowed))
    assert "access-control-allow-credentials" not in answer.headers
    assert answer.headers["x-content-type-options"] == "nosniff"


def test_a_configured_origin_may_predict_and_read_the_answer(cors_client, record):
    answer = cors_client.post(PREDICT, json=record, headers={"Origin": UI})
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == UI
    assert "x-request-id" in answer.headers["access-control-expose-headers"].lower()
    assert answer.json()["model"] == MODEL


def test_with_cors_on_other_origins_are_still_refused(cors_client, record):
    preflight = cors_client.options(
        PREDICT, headers={"Origin": EVIL, "Access-Control-Request-Method": "POST"}
    )
    post = cors_client.post(PREDICT, json=record, headers={"Origin": EVIL})
    assert "access-control-allow-origin" not in preflight.headers
    assert post.status_code == 403
    assert "access-control-allow-origin" not in post.headers


@pytest.mark.parametrize("origin", ["ui.example", "https://ui.example/app", "https://"])
def test_a_cors_origin_that_is_not_an_origin_stops_the_app(home, origin):
    with pytest.raises(ValueError, match="is not an origin"):
        create_app(Settings(home=home, cors_origins=[origin]))


@pytest.mark.parametrize(
    ("origin", "host", "allowed"),
    [
        ("http://127.0.0.1:8000", "127.0.0.1:8000", True),
        ("https://models.example", "models.example", True),  # TLS ended at a proxy
        ("https://models.example", "models.example:443", True),
        ("http://Models.Example:8000", "models.example:8000", True),
        ("http://127.0.0.1:8001", "127.0.0.1:8000", False),
        ("http://localhost:8000", "127.0.0.1:8000", False),
        ("null", "127.0.0.1:8000", False),
        ("http://127.0.0.1:8000", None, False),
    ],
)
def test_an_origin_is_this_server_when_host_and_port_agree(origin, host, allowed):
    assert is_allowed_origin(origin, host, frozenset()) is allowed


def test_a_listed_origin_or_a_star_is_allowed_from_anywhere():
    assert is_allowed_origin(UI, "127.0.0.1:8000", frozenset({UI}))
    assert is_allowed_origin(EVIL, "127.0.0.1:8000", frozenset({"*"}))
    assert not is_allowed_origin(EVIL, "127.0.0.1:8000", frozenset({UI}))
