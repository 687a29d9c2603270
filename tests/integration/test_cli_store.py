"""``tabops models push | pull | tag | list --store`` and ``tabops store``, between real registries.

Local stores are folders; the S3 tests run against the moto server the suite starts.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from fastapi.testclient import TestClient

from conftest import SEED_REQUEST, cli_output, stub_manifest
from tabops.config import Settings, get_settings
from tabops.model.predictor import Predictor
from tabops.registry import (
    LocalArtifactStore,
    ModelRegistry,
    open_artifact_store,
    open_registry,
)
from tabops.registry.tags import VersionTags
from tabops.registry.versions import MANIFEST
from tabops.server.app import create_app

Invoke = Callable[..., Result]
MODEL = "heart-failure"
HANG_SECONDS = 120
CLI_COLUMNS = 200


def registry_at(folder: Path) -> ModelRegistry:
    return ModelRegistry(LocalArtifactStore(folder))


def assert_clean_failure(result: Result, code: int = 1) -> None:
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.output
    assert "error:" in result.output


def version_files(registry: ModelRegistry, version: int) -> dict[str, bytes]:
    listed = registry.get_version(MODEL, version).manifest.files
    return {file: registry.read_file(MODEL, version, file) for file in [*listed, MANIFEST]}


# push and pull between folders -----------------------------------------------------------------


def test_push_copies_a_version_under_its_number_with_its_tags_and_manifest_bytes(
    invoke, trained_cli, tmp_path
):
    store = tmp_path / "store"
    assert invoke("models", "tag", f"{MODEL}:1", "1.0").exit_code == 0

    result = invoke("models", "push", MODEL, "--to", store, "--tag", "release")

    assert result.exit_code == 0, result.output
    assert f"copied {MODEL}:1 to {store} as {MODEL}:1" in cli_output(result)
    source, target = registry_at(trained_cli / "registry"), registry_at(store)
    assert target.list_versions(MODEL) == [1]
    assert version_files(target, 1) == version_files(source, 1)  # manifest included, unchanged
    assert VersionTags(target.store).of(MODEL) == {1: ["1.0", "release"]}
    assert target.aliases(MODEL) == {"production": 1}
    assert target.default_model() == MODEL
    assert VersionTags(source.store).of(MODEL) == {1: ["1.0"]}  # the source keeps its own tags


def test_models_list_store_shows_versions_aliases_and_tags_of_that_store(
    invoke, trained_cli, tmp_path
):
    store = tmp_path / "store"
    invoke("models", "push", MODEL, "--to", store.as_uri(), "--tag", "1.0", "--tag", "rc-2")

    result = invoke("models", "list", "--store", store.as_uri())

    assert result.exit_code == 0, result.output
    [row] = [line.split() for line in result.output.splitlines() if line.split()[:1] == [MODEL]]
    assert row[:3] == [MODEL, "1", "production"]
    assert row[-2:] == ["1.0,", "rc-2"]
    assert "tags" in result.output
    assert f"default model: {MODEL}" in cli_output(result)


def test_models_list_store_of_an_empty_folder_says_it_holds_no_models(
    invoke, trained_cli, tmp_path
):
    result = invoke("models", "list", "--store", tmp_path / "nothing")

    assert result.exit_code == 0, result.output
    assert "holds no models" in cli_output(result)


def test_models_list_without_tags_shows_no_tags_column(invoke, trained_cli):
    result = invoke("models", "list")

    assert result.exit_code == 0, result.output
    assert "tags" not in result.output


def test_push_again_reports_already_present_and_only_adds_the_new_tags(
    invoke, trained_cli, tmp_path
):
    store = tmp_path / "store"
    invoke("models", "push", MODEL, "--to", store)
    manifest = (store / MODEL / "versions" / "1" / MANIFEST).stat()

    result = invoke("models", "push", f"{MODEL}:1", "--to", store, "--tag", "2.0")

    assert result.exit_code == 0, result.output
    assert f"{MODEL}:1 to {store}: already present as {MODEL}:1; tags 2.0" in cli_output(result)
    assert (store / MODEL / "versions" / "1" / MANIFEST).stat().st_mtime_ns == manifest.st_mtime_ns
    assert registry_at(store).list_versions(MODEL) == [1]
    assert VersionTags(registry_at(store).store).of(MODEL) == {1: ["2.0"]}


def test_push_to_a_store_whose_number_is_taken_registers_the_next_number_once(
    invoke, trained_cli, tmp_path
):
    store = tmp_path / "store"
    target = registry_at(store)
    target.register(MODEL, {"model.skops": b"another model"}, stub_manifest())

    result = invoke("models", "push", MODEL, "--to", store, "--tag", "1.0")

    assert result.exit_code == 0, result.output
    assert f"as {MODEL}:2" in cli_output(result)
    assert "since number 1 there holds another version" in cli_output(result)
    copy = target.get_version(MODEL, 2)
    source = registry_at(trained_cli / "registry").get_version(MODEL, 1)
    assert copy.manifest.files == source.manifest.files
    assert copy.manifest.version == 2
    assert target.aliases(MODEL) == {"production": 1}  # the existing production stays
    assert VersionTags(target.store).find(MODEL, "1.0") == 2
    predictor = Predictor.load(target, MODEL, 2)  # a whole, loadable version
    assert 0.0 <= predictor.predict_record(predictor.example()).probability <= 1.0

    again = invoke("models", "push", MODEL, "--to", store)

    assert again.exit_code == 0, again.output
    assert f"to {store}: already present as {MODEL}:2" in cli_output(again)
    assert target.list_versions(MODEL) == [1, 2]


def test_push_with_promote_points_that_alias_at_the_copy(invoke, trained_cli, tmp_path):
    store = tmp_path / "store"

    result = invoke("models", "push", MODEL, "--to", store, "--promote", "staging")

    assert result.exit_code == 0, result.output
    assert registry_at(store).aliases(MODEL) == {"production": 1, "staging": 1}


def test_pull_by_tag_into_an_empty_home_gives_a_servable_default_model(
    invoke, home, empty_cli, tmp_path
):
    source = registry_at(home / "registry")
    VersionTags(source.store).add(MODEL, 1, ["1.0"])

    result = invoke("models", "pull", f"{MODEL}@1.0", "--from", (home / "registry").as_uri())

    assert result.exit_code == 0, result.output
    assert f"copied {MODEL}:1 from" in cli_output(result)
    pulled = registry_at(empty_cli / "registry")
    assert pulled.default_model() == MODEL
    assert pulled.resolve(MODEL) == 1
    assert VersionTags(pulled.store).of(MODEL) == {1: ["1.0"]}
    predictor = Predictor.load(pulled, MODEL)
    assert 0.0 <= predictor.predict_record(predictor.example()).probability <= 1.0


def test_pull_into_a_home_with_a_signing_key_says_the_copy_is_not_signed_with_it(
    invoke, home, empty_cli, monkeypatch
):
    monkeypatch.setenv("TABOPS_SIGNING_KEY", "a-key-of-this-registry")
    get_settings.cache_clear()

    result = invoke("models", "pull", MODEL, "--from", home / "registry")

    assert result.exit_code == 0, result.output
    assert "not signed with the signing key set for the target" in cli_output(result)
    assert f"tabops models sign {MODEL} --version 1" in cli_output(result)


def test_push_refuses_a_corrupt_source_and_writes_nothing(invoke, trained_cli, tmp_path):
    source = registry_at(trained_cli / "registry")
    model_file = trained_cli / "registry" / MODEL / "versions" / "1" / "model.skops"
    model_file.write_bytes(model_file.read_bytes()[:-1] + b"!")
    store = tmp_path / "store"

    result = invoke("models", "push", MODEL, "--to", store)

    assert_clean_failure(result)
    assert "model.skops does not match its sha256" in cli_output(result)
    assert registry_at(store).list_models() == []
    assert source.list_versions(MODEL) == [1]


def test_push_of_an_unknown_model_or_version_fails_cleanly(invoke, trained_cli, tmp_path):
    unknown_model = invoke("models", "push", "nothing-here", "--to", tmp_path / "store")
    unknown_version = invoke("models", "push", f"{MODEL}:7", "--to", tmp_path / "store")

    assert_clean_failure(unknown_model)
    assert "'nothing-here' not found" in cli_output(unknown_model)
    assert_clean_failure(unknown_version)
    assert "has no version 7" in cli_output(unknown_version)


def test_push_to_an_unknown_scheme_fails_cleanly(invoke, trained_cli):
    result = invoke("models", "push", MODEL, "--to", "ftp://example.org/models")

    assert_clean_failure(result)
    assert "ftp://" in cli_output(result)


# tags ------------------------------------------------------------------------------------------


def test_models_tag_adds_shows_and_removes_tags(invoke, trained_cli):
    added = invoke("models", "tag", f"{MODEL}:1", "1.0", "stable", "1.0")
    shown = invoke("models", "tag", f"{MODEL}@production")
    removed = invoke("models", "tag", f"{MODEL}:1", "stable", "--remove")

    assert added.exit_code == 0, added.output
    assert f"{MODEL}:1 tags: 1.0, stable" in cli_output(added)
    assert f"{MODEL}:1 tags: 1.0, stable" in cli_output(shown)
    assert f"{MODEL}:1 tags: 1.0" in cli_output(removed)
    assert VersionTags(registry_at(trained_cli / "registry").store).of(MODEL) == {1: ["1.0"]}


def test_find_answers_the_newest_version_carrying_a_tag(trained_cli):
    registry = registry_at(trained_cli / "registry")
    files = version_files(registry, 1)
    del files[MANIFEST]
    registry.register(MODEL, files, registry.get_version(MODEL, 1).manifest)
    registry.register(MODEL, files, registry.get_version(MODEL, 1).manifest)
    tags = VersionTags(registry.store)

    tags.add(MODEL, 1, ["1.0", "lts"])
    tags.add(MODEL, 2, ["lts"])

    assert tags.find(MODEL, "lts") == 2
    assert tags.find(MODEL, "1.0") == 1
    assert tags.find(MODEL, "2.0") is None
    assert tags.find("other-model", "lts") is None


@pytest.mark.parametrize("bad", ["bad tag", "_x", ".hidden", "123", "a" * 65, "ü1"])
def test_models_tag_refuses_an_invalid_tag_naming_the_rule(invoke, trained_cli, bad):
    result = invoke("models", "tag", f"{MODEL}:1", "1.0", bad)

    assert_clean_failure(result)
    assert f"invalid tag {bad!r}" in cli_output(result)
    assert "• tag: use letters, digits" in cli_output(result)
    assert VersionTags(registry_at(trained_cli / "registry").store).of(MODEL) == {}


def test_models_tag_needs_a_version_and_an_existing_one(invoke, trained_cli):
    no_version = invoke("models", "tag", MODEL, "1.0")
    missing = invoke("models", "tag", f"{MODEL}:9", "1.0")

    assert_clean_failure(no_version)
    assert "NAME:VERSION" in cli_output(no_version)
    assert_clean_failure(missing)
    assert "has no version 9" in cli_output(missing)


def test_push_with_an_invalid_tag_copies_nothing(invoke, trained_cli, tmp_path):
    result = invoke("models", "push", MODEL, "--to", tmp_path / "store", "--tag", "no way")

    assert_clean_failure(result)
    assert "invalid tag 'no way'" in cli_output(result)
    assert not (tmp_path / "store").exists()


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def any_store(request, tmp_path):
    """An empty artifact store: a folder, then a bucket on the moto server."""
    if request.param == "local":
        return LocalArtifactStore(tmp_path / "registry")
    url = request.getfixturevalue("s3_url")
    return open_artifact_store(url, tmp_path / "unused", tmp_path / "cache")


def test_taggers_at_once_lose_no_tag(any_store):
    tags = VersionTags(any_store)
    writers, per_writer = 3, 6
    barrier = threading.Barrier(writers)
    failures: list[BaseException] = []

    def tag_many(writer: int) -> None:
        try:
            barrier.wait(timeout=HANG_SECONDS)
            for index in range(per_writer):
                tags.add(MODEL, 1 + index % 2, [f"w{writer}-{index}"])
        except BaseException as exc:  # reported below: a thread's failure must fail the test
            failures.append(exc)

    threads = [threading.Thread(target=tag_many, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(HANG_SECONDS)

    assert not failures, failures
    assert not any(thread.is_alive() for thread in threads)
    held = tags.of(MODEL)
    assert sorted(tag for version in held.values() for tag in version) == sorted(
        f"w{w}-{i}" for w in range(writers) for i in range(per_writer)
    )


@pytest.mark.parametrize(
    "command",
    [("models", "push"), ("models", "pull"), ("models", "tag"), ("models", "list"), ("store",)],
)
def test_help_of_the_store_commands_renders(invoke, command):
    result = invoke(*command, "--help")

    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_store_create_bucket_refuses_an_invalid_name_before_any_request(invoke, use_home):
    result = invoke("store", "create-bucket", "Not_A_Bucket")

    assert_clean_failure(result)
    assert "invalid bucket name 'Not_A_Bucket'" in cli_output(result)


# S3 (the moto server the suite starts) ---------------------------------------------------------


@pytest.mark.s3
def test_store_create_bucket_creates_it_once(invoke, use_home, s3_env):
    bucket = f"test-{uuid.uuid4().hex[:16]}"

    created = invoke("store", "create-bucket", bucket)
    again = invoke("store", "create-bucket", f"s3://{bucket}")

    assert created.exit_code == 0, created.output
    assert f"created bucket {bucket}" in cli_output(created)
    assert again.exit_code == 0, again.output
    assert f"bucket {bucket} exists already" in cli_output(again)


@pytest.mark.s3
@pytest.mark.slow
def test_push_to_s3_list_pull_back_and_serve_from_the_bucket(
    invoke, use_home, home, s3_env, tmp_path, monkeypatch
):
    bucket = f"test-{uuid.uuid4().hex[:16]}"
    url = f"s3://{bucket}/models"
    use_home(home)
    assert invoke("store", "create-bucket", bucket).exit_code == 0

    pushed = invoke("models", "push", MODEL, "--to", url, "--tag", "1.0")
    listed = invoke("models", "list", "--store", url)
    again = invoke("models", "push", MODEL, "--to", url)

    assert pushed.exit_code == 0, pushed.output
    assert f"copied {MODEL}:1 to {url} as {MODEL}:1" in cli_output(pushed)
    assert listed.exit_code == 0, listed.output
    [row] = [line.split() for line in listed.output.splitlines() if line.split()[:1] == [MODEL]]
    assert row[:3] == [MODEL, "1", "production"]
    assert row[-1] == "1.0"
    assert f"to {url}: already present as {MODEL}:1; tags 1.0" in cli_output(again)
    on_s3 = open_registry(Settings(home=tmp_path / "reader", registry={"url": url}))
    assert version_files(on_s3, 1) == version_files(registry_at(home / "registry"), 1)

    pulled_home = tmp_path / "pulled-home"
    use_home(pulled_home)
    pulled = invoke("models", "pull", f"{MODEL}@1.0", "--from", url)

    assert pulled.exit_code == 0, pulled.output
    pulled_registry = registry_at(pulled_home / "registry")
    assert VersionTags(pulled_registry.store).of(MODEL) == {1: ["1.0"]}
    assert version_files(pulled_registry, 1) == version_files(on_s3, 1)

    monkeypatch.setenv("TABOPS_HOME", str(tmp_path / "serving-home"))
    monkeypatch.setenv("TABOPS_REGISTRY__URL", url)
    get_settings.cache_clear()
    with TestClient(create_app(get_settings())) as client:
        answer = client.post("/predict", content=SEED_REQUEST)

    assert answer.status_code == 200, answer.text
    assert answer.json()["version"] == 1


@pytest.mark.s3
def test_push_to_a_missing_bucket_fails_naming_it(invoke, trained_cli, s3_env):
    bucket = f"test-{uuid.uuid4().hex[:16]}"

    result = invoke("models", "push", MODEL, "--to", f"s3://{bucket}")

    assert_clean_failure(result)
    assert f"the bucket {bucket!r} does not exist" in cli_output(result)
    assert f"tabops store create-bucket {bucket}" in cli_output(result)
