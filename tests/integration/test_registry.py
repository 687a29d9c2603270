"""The model registry over a real ``LocalArtifactStore``: versions, aliases, atomic publish."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from conftest import stub_manifest
from tabops.config import Settings
from tabops.errors import ModelNotFoundError, RegistryError, VersionNotFoundError
from tabops.registry import LocalArtifactStore, ModelRegistry, open_registry, parse_model_ref

FILES = {"model.bin": b"weights", "notes/readme.txt": b"hello"}


class InterruptedFiles(Mapping[str, bytes]):
    """Files whose iteration fails after the first one, like a crash mid-write."""

    def __init__(self, files: Mapping[str, bytes]) -> None:
        self._files = dict(files)

    def __getitem__(self, key: str) -> bytes:
        return self._files[key]

    def __len__(self) -> int:
        return len(self._files)

    def __iter__(self) -> Iterator[str]:
        for index, key in enumerate(self._files):
            if index == 1:
                raise OSError("disk unplugged")
            yield key


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "registry"


@pytest.fixture
def store(root: Path) -> LocalArtifactStore:
    return LocalArtifactStore(root)


@pytest.fixture
def demo(store: LocalArtifactStore) -> ModelRegistry:
    """A registry holding three versions of ``demo``."""
    registry = ModelRegistry(store)
    for number in range(1, 4):
        registry.register("demo", {"model.bin": f"v{number}".encode()}, stub_manifest(n=number))
    return registry


def staging_leftovers(root: Path) -> list[Path]:
    staging = root / ".staging"
    return list(staging.iterdir()) if staging.exists() else []


def test_register_numbers_versions_from_one_upwards(store):
    registry = ModelRegistry(store)

    numbers = [registry.register("demo", FILES, stub_manifest()).version for _ in range(3)]

    assert numbers == [1, 2, 3]
    assert registry.list_versions("demo") == [1, 2, 3]
    assert registry.list_models() == ["demo"]


def test_register_first_version_becomes_production_and_later_ones_do_not(demo):
    assert demo.aliases("demo") == {"production": 1}
    assert demo.resolve("demo") == 1


def test_register_writes_files_and_a_manifest_with_their_hashes(store, root):
    registry = ModelRegistry(store)

    version = registry.register("demo", FILES, stub_manifest(metrics={"roc_auc": 0.9}))

    folder = root / "demo" / "versions" / "1"
    assert (folder / "notes" / "readme.txt").read_bytes() == b"hello"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest == version.manifest.document()
    assert manifest["metrics"] == {"roc_auc": 0.9}
    assert manifest["name"] == "demo"
    assert manifest["version"] == 1
    assert set(manifest["files"]) == set(FILES)
    assert version.ref == "demo:1"
    assert registry.get_version("demo", 1) == version
    assert registry.read_file("demo", 1, "model.bin") == b"weights"


def test_versions_sort_numerically_past_nine(store):
    registry = ModelRegistry(store)
    for _ in range(11):
        registry.register("demo", FILES, stub_manifest())

    assert registry.list_versions("demo") == list(range(1, 12))
    assert registry.register("demo", FILES, stub_manifest()).version == 12


def test_interrupted_publish_leaves_no_version_and_no_staging_dir(store, root):
    with pytest.raises(OSError, match="disk unplugged"):
        store.publish("demo/versions/1", InterruptedFiles(FILES))

    assert not store.exists("demo/versions/1")
    assert ModelRegistry(store).list_versions("demo") == []
    assert staging_leftovers(root) == []


def test_interrupted_registration_leaves_no_visible_version(store, root):
    registry = ModelRegistry(store)

    with pytest.raises(OSError, match="disk unplugged"):
        registry.register("demo", InterruptedFiles(FILES), stub_manifest())

    assert registry.list_versions("demo") == []
    assert registry.list_models() == []
    assert staging_leftovers(root) == []
    assert registry.register("demo", FILES, stub_manifest()).version == 1


def test_publish_to_an_existing_version_returns_false_and_changes_nothing(demo, store, root):
    assert store.publish("demo/versions/2", {"model.bin": b"intruder"}) is False

    assert demo.read_file("demo", 2, "model.bin") == b"v2"
    assert staging_leftovers(root) == []


def test_publish_refuses_file_names_escaping_the_version_directory(store, tmp_path):
    with pytest.raises(ValueError, match="invalid"):
        store.publish("demo/versions/1", {"../../../escaped.txt": b"x"})

    assert not (tmp_path / "escaped.txt").exists()
    assert not list(tmp_path.rglob("escaped.txt"))


def test_leftover_hidden_staging_directories_are_never_listed(demo, root):
    hidden_version = root / "demo" / "versions" / ".tmp-4"
    hidden_version.mkdir()
    (hidden_version / "manifest.json").write_text("{}")
    orphan = root / ".staging" / "tmpabc"
    orphan.mkdir(parents=True)
    (orphan / "manifest.json").write_text("{}")
    (root / "demo" / "versions" / "draft").mkdir()

    assert demo.list_versions("demo") == [1, 2, 3]
    assert demo.list_models() == ["demo"]
    assert demo.register("demo", FILES, stub_manifest()).version == 4


def test_set_alias_points_alias_and_returns_previous_target(demo):
    assert demo.set_alias("demo", "staging", 2) is None
    assert demo.set_alias("demo", "production", 3) == 1

    assert demo.aliases("demo") == {"production": 3, "staging": 2}
    assert demo.resolve("demo", "staging") == 2
    assert demo.get_version("demo", "production").manifest.document()["n"] == 3
    assert demo.get_version("demo").version == 3


def test_rollback_walks_back_through_alias_history(demo):
    demo.set_alias("demo", "production", 2)
    demo.set_alias("demo", "production", 3)

    assert demo.rollback("demo") == (3, 2)
    assert demo.resolve("demo") == 2
    assert demo.rollback("demo") == (2, 1)
    assert demo.resolve("demo") == 1
    with pytest.raises(RegistryError, match="no earlier version"):
        demo.rollback("demo")
    assert demo.resolve("demo") == 1


def test_alias_history_lists_earlier_targets_oldest_first(demo):
    assert demo.alias_history("demo", "production") == []
    demo.set_alias("demo", "production", 2)
    demo.set_alias("demo", "production", 3)

    assert demo.alias_history("demo", "production") == [1, 2]
    demo.rollback("demo")
    assert demo.alias_history("demo", "production") == [1]


def test_alias_history_of_unknown_alias_or_model_raises_not_found(demo):
    with pytest.raises(VersionNotFoundError, match="staging"):
        demo.alias_history("demo", "staging")
    with pytest.raises(ModelNotFoundError):
        demo.alias_history("nope", "production")


def test_set_alias_to_current_target_adds_no_history(demo):
    assert demo.set_alias("demo", "production", 1) == 1

    with pytest.raises(RegistryError, match="no earlier version"):
        demo.rollback("demo")


def test_rollback_without_history_raises_registry_error(demo):
    with pytest.raises(RegistryError, match="demo@production"):
        demo.rollback("demo")


def test_rollback_of_unknown_alias_raises_version_not_found(demo):
    with pytest.raises(VersionNotFoundError, match="staging"):
        demo.rollback("demo", "staging")


def test_set_alias_to_missing_version_raises_version_not_found(demo):
    with pytest.raises(VersionNotFoundError, match="no version 9"):
        demo.set_alias("demo", "production", 9)
    assert demo.aliases("demo") == {"production": 1}


@pytest.mark.parametrize(
    "alias", ["Prod", "1st", "../production", "a b", "", "production\n", "x" * 33]
)
def test_set_alias_with_invalid_alias_raises_registry_error(demo, alias):
    with pytest.raises(RegistryError, match="invalid alias"):
        demo.set_alias("demo", alias, 1)


def test_resolve_unknown_model_raises_model_not_found(demo):
    with pytest.raises(ModelNotFoundError, match="'nope'"):
        demo.resolve("nope")
    with pytest.raises(ModelNotFoundError):
        demo.get_version("nope", 1)


@pytest.mark.parametrize("ref", [9, "9", "0", "staging"])
def test_resolve_unknown_version_or_alias_raises_version_not_found(demo, ref):
    with pytest.raises(VersionNotFoundError):
        demo.resolve("demo", ref)


def test_resolve_accepts_number_string_and_alias(demo):
    assert demo.resolve("demo", 2) == 2
    assert demo.resolve("demo", "3") == 3
    assert demo.resolve("demo", "production") == 1


def test_resolve_finds_the_newest_version_carrying_a_tag_and_aliases_win(demo, store):
    from tabops.registry.tags import VersionTags

    tags = VersionTags(store)
    tags.add("demo", 1, ["1.0"])
    tags.add("demo", 2, ["1.0", "staging"])

    assert demo.resolve("demo", "1.0") == 2
    demo.set_alias("demo", "staging", 3)
    assert demo.resolve("demo", "staging") == 3
    with pytest.raises(VersionNotFoundError, match="alias or tag"):
        demo.resolve("demo", "2.0")


def test_resolve_unicode_digit_reference_raises_version_not_found(demo):
    with pytest.raises(VersionNotFoundError):
        demo.resolve("demo", "²")


@pytest.mark.parametrize("name", ["../outside", "..", "demo/../demo", "Demo", "", ".staging"])
def test_invalid_model_names_are_not_found_and_touch_nothing_outside_root(demo, root, name):
    outside = root.parent / "outside" / "versions" / "1"
    outside.mkdir(parents=True)
    (outside / "manifest.json").write_text('{"name": "outside"}')

    assert demo.list_versions(name) == []
    assert demo.aliases(name) == {}
    with pytest.raises(ModelNotFoundError):
        demo.resolve(name)
    with pytest.raises(ModelNotFoundError):
        demo.get_version(name, 1)
    with pytest.raises(ModelNotFoundError):
        demo.set_alias(name, "production", 1)
    with pytest.raises(RegistryError, match="invalid model name"):
        demo.register(name, FILES, stub_manifest())
    assert sorted(p.name for p in root.parent.iterdir()) == ["outside", "registry"]


def test_store_keys_with_dot_parts_are_refused(store):
    for key in ("../x", "a/./b", "a/.hidden", ""):
        with pytest.raises(ValueError, match="invalid artifact key"):
            store.read_bytes(key)


def test_list_models_is_empty_for_a_fresh_root(store):
    registry = ModelRegistry(store)

    assert registry.list_models() == []
    assert registry.list_versions("demo") == []
    assert registry.aliases("demo") == {}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("heart-failure", ("heart-failure", None)),
        ("heart-failure@production", ("heart-failure", "production")),
        ("heart-failure:3", ("heart-failure", "3")),
        ("heart-failure@", ("heart-failure", "")),
    ],
)
def test_parse_model_ref_splits_name_and_reference(text, expected):
    assert parse_model_ref(text) == expected


def test_publish_removes_staging_left_by_a_dead_writer_but_not_fresh_staging(store, root):
    staging = root / ".staging"
    stale, fresh = staging / "stale-writer", staging / "live-writer"
    for folder in (stale, fresh):
        folder.mkdir(parents=True)
        (folder / "model.skops").write_bytes(b"partial")
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))

    assert store.publish("demo/versions/1", {"a.txt": b"a"})

    assert not stale.exists()
    assert fresh.exists()


def test_a_version_without_its_manifest_does_not_exist_yet(demo, root):
    half_written = root / "demo" / "versions" / "4"
    half_written.mkdir()
    (half_written / "model.bin").write_bytes(b"weights, manifest not yet written")

    assert demo.list_versions("demo") == [1, 2, 3]
    assert demo.register("demo", FILES, stub_manifest()).version == 5


def test_open_registry_takes_a_folder_or_a_file_url(tmp_path):
    for url in (str(tmp_path / "a"), (tmp_path / "b").as_uri()):
        registry = open_registry(Settings(home=tmp_path / "home", registry={"url": url}))
        registry.register("demo", FILES, stub_manifest())
    assert (tmp_path / "a" / "demo" / "versions" / "1" / "manifest.json").is_file()
    assert (tmp_path / "b" / "demo" / "versions" / "1" / "manifest.json").is_file()
    default = open_registry(Settings(home=tmp_path / "home"))
    default.register("demo", FILES, stub_manifest())
    assert (tmp_path / "home" / "registry" / "demo" / "versions" / "1").is_dir()


@pytest.mark.parametrize("url", ["gs://bucket/models", "file://elsewhere/models"])
def test_open_registry_refuses_a_url_no_backend_serves(tmp_path, url):
    with pytest.raises(RegistryError, match="registry"):
        open_registry(Settings(home=tmp_path, registry={"url": url}))


# The default model ---------------------------------------------------------------------------


def test_the_first_model_registered_stays_the_default_as_others_arrive(store, root):
    registry = ModelRegistry(store)
    assert registry.default_model() is None

    registry.register("zeta", FILES, stub_manifest())
    registry.register("alpha", FILES, stub_manifest())
    registry.register("zeta", FILES, stub_manifest())

    assert registry.default_model() == "zeta"
    assert json.loads((root / "default-model.json").read_text())["model"] == "zeta"
    assert registry.list_models() == ["alpha", "zeta"]


def test_set_default_model_records_the_choice_and_returns_the_previous_one(demo):
    demo.register("other", FILES, stub_manifest())

    assert demo.set_default_model("other") == "demo"
    assert demo.default_model() == "other"
    assert demo.set_default_model("other") == "other"


@pytest.mark.parametrize("name", ["nope", "../outside", "Demo"])
def test_set_default_model_refuses_a_model_that_is_not_registered(demo, name):
    with pytest.raises(ModelNotFoundError, match="registered models: demo"):
        demo.set_default_model(name)

    assert demo.default_model() == "demo"


def test_a_registry_without_a_record_has_a_default_only_when_it_holds_one_model(demo, root):
    (root / "default-model.json").unlink()
    assert demo.default_model() == "demo"

    (root / "other" / "versions").mkdir(parents=True)
    shutil.copytree(root / "demo" / "versions" / "1", root / "other" / "versions" / "1")

    assert demo.default_model() is None
    demo.register("third", FILES, stub_manifest())
    assert demo.default_model() is None
    assert not (root / "default-model.json").exists()


def test_an_unreadable_default_record_is_a_registry_error_naming_the_fix(demo, root):
    (root / "default-model.json").write_text("{not json")

    with pytest.raises(RegistryError, match="tabops models default NAME"):
        demo.default_model()
