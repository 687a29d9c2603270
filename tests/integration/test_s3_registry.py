"""The model registry on S3-compatible storage (a real moto server on 127.0.0.1)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import boto3
import pytest
from fastapi.testclient import TestClient

from conftest import SEED_REQUEST, stub_manifest
from s3_server import copy_version, free_port, new_bucket, point_aws_at, start_moto_server
from tabops.config import Settings
from tabops.errors import (
    ModelNotFoundError,
    RegistryError,
    StoreUnavailableError,
    VersionNotFoundError,
)
from tabops.model.predictor import Predictor
from tabops.registry import LocalArtifactStore, ModelRegistry, open_artifact_store, open_registry
from tabops.registry.s3 import CLAIM, S3ArtifactStore, create_bucket, parse_s3_url
from tabops.registry.s3_access import endpoint_folder
from tabops.registry.versions import MANIFEST
from tabops.server.app import create_app

pytestmark = pytest.mark.s3

FILES = {"model.bin": b"weights", "notes/readme.txt": b"hello"}
MODEL = "heart-failure"  # the trained example
PROCESS_SECONDS = 300  # a process moving aliases that has not finished by then hangs
MOVES_PER_PROCESS = 25


def open_s3(url: str, cache: Path | None = None) -> ModelRegistry:
    return ModelRegistry(open_artifact_store(url, Path("unused"), cache))


def s3_client():
    return boto3.session.Session().client("s3")


# The registry's behaviour on S3 ------------------------------------------------------------


def test_register_list_get_and_read_files_on_s3(s3_url):
    registry = open_s3(s3_url)

    numbers = [registry.register("demo", FILES, stub_manifest(n=n)).version for n in range(3)]

    assert numbers == [1, 2, 3]
    assert registry.list_versions("demo") == [1, 2, 3]
    assert registry.list_models() == ["demo"]
    assert registry.get_version("demo", 2).manifest.document()["n"] == 1
    assert registry.read_file("demo", 3, "notes/readme.txt") == b"hello"
    assert registry.summarize_version("demo", 1).version == 1


def test_aliases_rollback_and_default_model_on_s3(s3_url):
    registry = open_s3(s3_url)
    for _ in range(3):
        registry.register("demo", FILES, stub_manifest())
    registry.register("other", FILES, stub_manifest())

    assert registry.aliases("demo") == {"production": 1}
    assert registry.set_alias("demo", "production", 3) == 1
    assert registry.set_alias("demo", "staging", 2) is None
    assert registry.set_alias("demo", "production", 2) == 3
    assert registry.aliases("demo") == {"production": 2, "staging": 2}
    assert registry.rollback("demo") == (2, 3)
    assert registry.rollback("demo") == (3, 1)
    with pytest.raises(RegistryError, match="no earlier version"):
        registry.rollback("demo")
    assert registry.default_model() == "demo"
    assert registry.set_default_model("other") == "demo"
    assert registry.default_model() == "other"


def test_unknown_models_versions_and_aliases_are_not_found_on_s3(s3_url):
    registry = open_s3(s3_url)
    registry.register("demo", FILES, stub_manifest())

    with pytest.raises(ModelNotFoundError):
        registry.resolve("nope")
    with pytest.raises(VersionNotFoundError):
        registry.resolve("demo", 7)
    with pytest.raises(VersionNotFoundError):
        registry.resolve("demo", "canary")


def test_a_claimed_number_without_a_manifest_is_never_listed_nor_reused(s3_url):
    registry = open_s3(s3_url)
    registry.register("demo", FILES, stub_manifest())
    bucket, prefix = parse_s3_url(s3_url)
    # What a writer killed after its claim and its first file leaves behind.
    for name in (CLAIM, "model.bin"):
        key = f"{prefix}/demo/versions/2/{name}"
        s3_client().put_object(Bucket=bucket, Key=key, Body=b"x")

    assert registry.list_versions("demo") == [1]
    assert registry.register("demo", FILES, stub_manifest()).version == 3
    assert registry.list_versions("demo") == [1, 3]


def test_publish_refuses_a_claimed_prefix_and_writes_the_manifest_last(s3_url):
    store = open_artifact_store(s3_url, Path("unused"))
    assert store.publish("demo/versions/1", {"a.bin": b"a", "b.bin": b"b", MANIFEST: b"{}"})

    assert not store.publish("demo/versions/1", {MANIFEST: b"{}"})
    bucket, prefix = parse_s3_url(s3_url)
    listed = s3_client().list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/demo/versions/1/")
    by_time = sorted(listed["Contents"], key=lambda item: item["LastModified"])
    assert by_time[-1]["Key"].endswith(MANIFEST)
    assert store.list_children("demo/versions/1") == ["a.bin", "b.bin", MANIFEST]


def test_a_large_file_goes_up_in_parts_and_comes_back_whole(s3_url):
    registry = open_s3(s3_url)
    large = os.urandom(20 * 1024 * 1024)

    registry.register("demo", {"large.bin": large}, stub_manifest())

    assert open_s3(s3_url).read_file("demo", 1, "large.bin") == large
    bucket, prefix = parse_s3_url(s3_url)
    head = s3_client().head_object(Bucket=bucket, Key=f"{prefix}/demo/versions/1/large.bin")
    assert "-" in head["ETag"]  # the ETag of a multipart upload: <md5 of parts>-<parts>


# Compare-and-set, on both stores ----------------------------------------------------------


@pytest.fixture(params=["local", "s3"])
def any_store(request, tmp_path):
    if request.param == "local":
        return LocalArtifactStore(tmp_path / "registry")
    return open_artifact_store(request.getfixturevalue("s3_url"), Path("unused"))


def test_write_if_creates_only_when_absent(any_store):
    assert any_store.write_if("a/record.json", b"first", None)
    assert not any_store.write_if("a/record.json", b"second", None)
    assert any_store.read_bytes("a/record.json") == b"first"


def test_write_if_replaces_only_the_version_it_read(any_store):
    any_store.write_bytes("a/record.json", b"first")
    data, tag = any_store.read_versioned("a/record.json")
    assert data == b"first"

    assert any_store.write_if("a/record.json", b"second", tag)
    assert not any_store.write_if("a/record.json", b"third", tag)
    assert any_store.read_versioned("a/record.json")[0] == b"second"
    with pytest.raises(FileNotFoundError):
        any_store.read_versioned("a/missing.json")


def test_list_children_holding_names_only_children_with_the_file(any_store):
    any_store.publish("m/versions/1", {"x": b"1", MANIFEST: b"{}"})
    any_store.publish("m/versions/2", {"x": b"2", MANIFEST: b"{}"})
    any_store.write_bytes("m/versions/3/x", b"half a version")

    assert any_store.list_children("m/versions") == ["1", "2", "3"]
    assert any_store.list_children_holding("m/versions", MANIFEST) == ["1", "2"]


MOVER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from tabops.registry import ModelRegistry, open_artifact_store

    url, versions, moves = sys.argv[1], [int(v) for v in sys.argv[2].split(",")], int(sys.argv[3])
    registry = ModelRegistry(open_artifact_store(url, Path("unused")))
    moved = 0
    for index in range(moves):
        target = versions[index % len(versions)]
        moved += registry.set_alias("demo", "production", target) != target
    print(moved)
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["local", "s3"])
def test_two_processes_moving_one_alias_lose_no_move(kind, request, tmp_path):
    url = str(tmp_path / "registry") if kind == "local" else request.getfixturevalue("s3_url")
    registry = ModelRegistry(open_artifact_store(url, Path("unused")))
    for _ in range(3):
        registry.register("demo", FILES, stub_manifest())
    command = [sys.executable, "-c", MOVER, url]
    processes = [
        subprocess.Popen([*command, versions, str(MOVES_PER_PROCESS)], stdout=subprocess.PIPE)
        for versions in ("1,2", "3,2")
    ]
    moves = [int(process.communicate(timeout=PROCESS_SECONDS)[0]) for process in processes]

    assert [process.returncode for process in processes] == [0, 0]
    assert all(count > 0 for count in moves)
    record = json.loads(registry.store.read_bytes("demo/aliases/production.json"))
    assert len(record["history"]) == sum(moves)


# Models trained by tabops, served from S3 ------------------------------------------------


@pytest.fixture
def s3_home(home, s3_url) -> tuple[Path, str]:
    """A private trained home whose production version is also the first on S3."""
    target = open_registry(Settings(home=home, registry={"url": s3_url}))
    copy_version(open_registry(Settings(home=home)), target)
    return home, s3_url


def test_a_trained_version_loads_from_s3_and_predicts_as_the_local_one(s3_home, heart_frame):
    home, url = s3_home
    registry = open_registry(Settings(home=home, registry={"url": url}))
    rows = heart_frame.drop(columns=["DEATH_EVENT"]).head(20)

    predictor = Predictor.load(registry, MODEL)

    assert predictor.version.ref == f"{MODEL}:1"
    local = Predictor.load(open_registry(Settings(home=home)), MODEL)
    assert predictor.score_frame(rows).tolist() == local.score_frame(rows).tolist()


def test_the_app_answers_predict_from_an_s3_registry(s3_home, monkeypatch):
    home, url = s3_home
    monkeypatch.setenv("TABOPS_REGISTRY__URL", url)

    with TestClient(create_app(Settings(home=home))) as client:
        answer = client.post("/predict", content=SEED_REQUEST)

    assert answer.status_code == 200, answer.text
    assert answer.json()["version"] == 1


def test_a_new_store_on_the_same_cache_answers_while_s3_is_unreachable(home, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    with start_moto_server() as moto:
        point_aws_at(monkeypatch, moto.endpoint, tmp_path)
        url = f"s3://{new_bucket()}/models"
        online = open_s3(url, cache)
        copy_version(open_registry(Settings(home=home)), online)
        online.set_alias(MODEL, "production", 1)
        online.set_default_model(MODEL)
        Predictor.load(online, MODEL)
    assert moto.process.poll() is not None  # the store is gone, its endpoint unchanged

    offline = open_s3(url, cache)

    assert offline.default_model() == MODEL
    assert offline.aliases(MODEL) == {"production": 1}
    assert Predictor.load(offline, MODEL).version.version == 1
    with pytest.raises(StoreUnavailableError, match=r"cannot be reached.*no copy") as caught:
        offline.list_versions("never-read")
    assert moto.endpoint in caught.value.message
    assert parse_s3_url(url)[0] in caught.value.message


def test_a_bucket_of_the_same_name_elsewhere_never_reads_this_ones_cache(
    s3_server, tmp_path, monkeypatch
):
    cache, bucket = tmp_path / "cache", f"test-{uuid.uuid4().hex[:16]}"
    with start_moto_server() as other:
        point_aws_at(monkeypatch, other.endpoint, tmp_path)
        create_bucket(bucket)
        first = open_s3(f"s3://{bucket}", cache)
        first.register("demo", {"small.bin": b"from the other server"}, stub_manifest())
        assert first.read_file("demo", 1, "small.bin") == b"from the other server"  # cached
    point_aws_at(monkeypatch, s3_server.endpoint, tmp_path)
    create_bucket(bucket)
    # Registered from elsewhere: nothing of it passes through this cache on the way in.
    open_s3(f"s3://{bucket}").register("demo", {"small.bin": b"from this server"}, stub_manifest())
    second = open_s3(f"s3://{bucket}", cache)

    assert second.read_file("demo", 1, "small.bin") == b"from this server"
    assert sorted(folder.name for folder in cache.iterdir()) == sorted(
        endpoint_folder(server.endpoint) for server in (other, s3_server)
    )


# Errors and configuration ------------------------------------------------------------------


def test_an_unreachable_store_without_cache_is_a_clear_503_error(s3_env, monkeypatch, caplog):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    registry = open_s3("s3://some-bucket/models")

    with caplog.at_level(logging.WARNING, logger="tabops.registry.s3"):
        for _ in range(3):
            with pytest.raises(StoreUnavailableError, match="s3://some-bucket/models") as caught:
                registry.list_models()

    assert "EndpointConnectionError" in caught.value.message
    assert "testing-secret" not in caught.value.message
    assert len(caplog.records) == 1  # one warning per outage


def test_a_missing_bucket_is_a_registry_error_naming_it(s3_env):
    with pytest.raises(RegistryError, match="bucket 'no-such-bucket-here' does not exist"):
        open_s3("s3://no-such-bucket-here/models").list_models()


def test_credentials_the_store_refuses_are_a_registry_error_saying_so(monkeypatch, tmp_path):
    with start_moto_server(INITIAL_NO_AUTH_ACTION_COUNT="0") as checking:
        point_aws_at(monkeypatch, checking.endpoint, tmp_path)

        with pytest.raises(RegistryError, match=r"denied \(InvalidAccessKeyId\).*credentials"):
            open_s3("s3://some-bucket/models").list_models()


def test_no_credentials_at_all_is_a_registry_error_saying_so(s3_env, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")

    with pytest.raises(RegistryError, match="no credentials found"):
        open_s3(f"s3://{uuid.uuid4().hex}/m").list_models()


def test_credentials_come_from_an_aws_profile(s3_url, monkeypatch, tmp_path):
    (tmp_path / "aws-config").write_text("[profile registry]\nregion = us-east-1\n")
    (tmp_path / "aws-credentials").write_text(
        "[registry]\naws_access_key_id = fromprofile\naws_secret_access_key = secret\n"
    )
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_PROFILE", "registry")
    store = open_artifact_store(s3_url, Path("unused"))
    assert isinstance(store, S3ArtifactStore)

    ModelRegistry(store).register("demo", FILES, stub_manifest())

    assert open_s3(s3_url).list_versions("demo") == [1]
    monkeypatch.setenv("AWS_PROFILE", "absent")
    with pytest.raises(RegistryError, match="absent"):
        open_s3(s3_url).list_models()


def test_create_bucket_tells_whether_it_created_one(s3_env):
    name = f"test-{uuid.uuid4().hex[:12]}"

    assert create_bucket(f"s3://{name}/models")
    assert not create_bucket(name)
    with pytest.raises(RegistryError, match="invalid bucket name"):
        create_bucket("Not_A_Bucket")


@pytest.mark.parametrize(
    "url", ["s3://", "s3://Bad_Bucket/x", "s3://bucket/../x", "s3://bucket/.hidden"]
)
def test_invalid_s3_urls_are_refused(url, tmp_path):
    with pytest.raises(RegistryError):
        open_artifact_store(url, tmp_path)


def test_local_registries_and_the_cli_help_never_import_boto3(tmp_path):
    code = (
        "import sys; from pathlib import Path; import tabops.cli.main; "
        "from tabops.registry import ModelRegistry, open_artifact_store; "
        f"ModelRegistry(open_artifact_store({str(tmp_path)!r}, Path('x'))).list_models(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore')))"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"
