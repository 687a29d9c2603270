"""A real S3-compatible server (moto in server mode) on 127.0.0.1 for the registry tests.

``s3_server`` starts one per test session (per xdist worker); ``s3_env`` points the AWS
variables of one test at it, with dummy keys and no AWS files of the machine; ``s3_url``
gives each test a bucket of its own. ``start_moto_server`` starts a private one, for the
tests that stop it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tabops.model.manifest import Manifest
from tabops.registry import LocalArtifactStore, ModelRegistry
from tabops.registry.versions import MANIFEST

START_SECONDS = 60.0
STOP_SECONDS = 30.0
REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class MotoServer:
    endpoint: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(STOP_SECONDS)


def _answers(endpoint: str) -> bool:
    try:
        urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
    except OSError:
        return False
    return True


@contextlib.contextmanager
def start_moto_server(**environment: str) -> Iterator[MotoServer]:
    """A moto server on a free port of 127.0.0.1, killed when the block ends.

    ``environment``: more variables for it, such as ``INITIAL_NO_AUTH_ACTION_COUNT="0"``
    (check every request's credentials).
    """
    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("boto3") is None:
        pytest.skip("moto[server] and boto3 are not installed: pip install -e '.[dev]'")
    port = free_port()
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    process = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **environment},
    )
    server = MotoServer(f"http://127.0.0.1:{port}", process)
    try:
        deadline = time.monotonic() + START_SECONDS
        while not _answers(server.endpoint):
            if process.poll() is not None:
                raise RuntimeError(f"moto_server exited with code {process.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"moto_server did not answer within {START_SECONDS} s")
            time.sleep(0.1)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[MotoServer]:
    with start_moto_server() as server:
        yield server


def point_aws_at(monkeypatch: pytest.MonkeyPatch, endpoint: str, home: Path) -> None:
    """AWS variables for ``endpoint``: dummy keys, no profile, no files, no instance role."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def s3_env(s3_server: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """The session's moto server endpoint, set as this test's AWS environment."""
    point_aws_at(monkeypatch, s3_server.endpoint, tmp_path)
    return s3_server.endpoint


def copy_version(source: ModelRegistry, target: ModelRegistry, name: str = "heart-failure") -> int:
    """Register the source's production version of ``name`` anew in ``target``."""
    version = source.resolve(name)
    assert isinstance(source.store, LocalArtifactStore)
    root = source.store.root / name / "versions" / str(version)
    files = {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name != MANIFEST
    }
    manifest = Manifest.from_json(source.read_file(name, version, MANIFEST))
    return target.register(name, files, manifest).version


def new_bucket() -> str:
    from tabops.registry.s3 import create_bucket

    name = f"test-{uuid.uuid4().hex[:16]}"
    create_bucket(name)
    return name


@pytest.fixture
def s3_url(s3_env: str) -> str:
    """``s3://<a new bucket>/registry`` on the session's server."""
    return f"s3://{new_bucket()}/registry"
