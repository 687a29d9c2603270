"""The registry on S3 through crashes and outages: a writer killed mid-upload, a store gone.

A process registering a version with a large file is killed with SIGKILL once its claim and
its multipart upload exist: no half version may become visible, and the next registration
takes a later number. An app loads a model from S3, the S3 server is stopped, and a new
``tabops serve`` process on the same home answers from the cache, while what was never read
answers 503 ``store_unavailable``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import boto3
import httpx2
import pytest
from fastapi.testclient import TestClient

from conftest import SEED_REQUEST, stub_manifest
from e2e.test_soak import running_server
from s3_server import copy_version, new_bucket, point_aws_at, start_moto_server
from tabops.config import Settings
from tabops.registry import ModelRegistry, open_artifact_store, open_registry
from tabops.registry.s3 import CLAIM, parse_s3_url
from tabops.server.app import create_app

pytestmark = [pytest.mark.s3, pytest.mark.slow]

MODEL = "heart-failure"  # the trained example
LARGE_BYTES = 64 * 1024 * 1024
UPLOAD_START_SECONDS = 120  # the writer has neither claimed nor started its upload: a hang
POLL_SECONDS = 0.01

WRITER = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    from tabops.model.manifest import Manifest
    from tabops.registry import ModelRegistry, open_artifact_store

    registry = ModelRegistry(open_artifact_store(sys.argv[1], Path("unused")))
    files = {"large.bin": os.urandom(int(sys.argv[2])), "small.bin": b"small"}
    registry.register("demo", files, Manifest.model_validate(json.loads(sys.argv[3])))
    """
)


def upload_started(client, bucket: str, folder: str) -> bool:
    """Whether the claim of ``folder`` exists and a multipart upload into it has begun."""
    claimed = client.list_objects_v2(Bucket=bucket, Prefix=f"{folder}/{CLAIM}").get("KeyCount")
    if not claimed:
        return False
    uploads = client.list_multipart_uploads(Bucket=bucket, Prefix=f"{folder}/").get("Uploads")
    return bool(uploads)


def post_seed(base: str, headers: dict[str, str], *paths: str) -> list[httpx2.Response]:
    """The answers to the seed record posted to each path in turn."""
    with httpx2.Client(base_url=base, headers=headers, timeout=30) as http:
        return [http.post(path, content=SEED_REQUEST) for path in paths]


def test_a_writer_killed_mid_upload_leaves_no_visible_version(s3_url):
    registry = ModelRegistry(open_artifact_store(s3_url, Path("unused")))
    registry.register("demo", {"small.bin": b"one"}, stub_manifest())
    bucket, prefix = parse_s3_url(s3_url)
    client = boto3.session.Session().client("s3")
    manifest = json.dumps(stub_manifest().document())
    writer = subprocess.Popen([sys.executable, "-c", WRITER, s3_url, str(LARGE_BYTES), manifest])
    try:
        deadline = time.monotonic() + UPLOAD_START_SECONDS
        while not upload_started(client, bucket, f"{prefix}/demo/versions/2"):
            assert writer.poll() is None, f"the writer ended first ({writer.returncode})"
            assert time.monotonic() < deadline, "the writer never started its upload"
            time.sleep(POLL_SECONDS)
        os.kill(writer.pid, signal.SIGKILL)
    finally:
        writer.kill()
        writer.wait()

    assert writer.returncode == -signal.SIGKILL
    fresh = ModelRegistry(open_artifact_store(s3_url, Path("unused")))
    assert fresh.list_versions("demo") == [1]
    assert fresh.register("demo", {"small.bin": b"three"}, stub_manifest()).version == 3
    assert fresh.list_versions("demo") == [1, 3]
    assert fresh.read_file("demo", 3, "small.bin") == b"three"
    assert fresh.aliases("demo") == {"production": 1}


def test_a_restarted_server_serves_from_its_cache_while_the_store_is_down(
    home, tmp_path, monkeypatch
):
    with start_moto_server() as moto:
        point_aws_at(monkeypatch, moto.endpoint, tmp_path)
        url = f"s3://{new_bucket()}/models"
        # Registered from elsewhere: nothing of it is in the server's cache.
        s3_registry = ModelRegistry(open_artifact_store(url, Path("unused")))
        local = open_registry(Settings(home=home))
        assert [copy_version(local, s3_registry) for _ in range(2)] == [1, 2]
        with TestClient(create_app(Settings(home=home, registry={"url": url}))) as client:
            first = client.post("/predict", content=SEED_REQUEST)
        assert first.status_code == 200, first.text

    assert moto.process.poll() is not None  # the store is gone
    (tmp_path / "second").mkdir()
    with running_server(home, tmp_path / "second", registry__url=url) as (base, _, headers):
        served, again, never_read = post_seed(
            base, headers, "/predict", "/predict", f"/v1/models/{MODEL}/predict?version=2"
        )

    assert served.status_code == 200, served.text
    assert served.json()["version"] == 1
    assert again.status_code == 200
    assert never_read.status_code == 503, never_read.text
    error = never_read.json()["error"]
    assert error["code"] == "store_unavailable"
    assert moto.endpoint in error["message"]
    assert parse_s3_url(url)[0] in error["message"]
    log = (tmp_path / "second" / "serve.log").read_text()
    assert log.count("answering from the local cache") == 1
    assert "Traceback" not in log
