"""The naming rule of model names and aliases, and the registry refusing names off it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pytest
from pydantic import Field, TypeAdapter, ValidationError

from conftest import stub_manifest
from tabops.errors import ModelNotFoundError, Problem, RegistryError, VersionNotFoundError
from tabops.names import ALIAS_PATTERN, MODEL_NAME_PATTERN, is_alias, is_model_name
from tabops.registry import LocalArtifactStore, ModelRegistry

FILES = {"model.bin": b"weights"}
GOOD_NAMES = ["heart-failure", "a", "1st-model", "credit_risk_2", "a" * 63]
# Trailing newline, paths, hidden files, case, spaces, length, and Unicode lookalikes:
# a Cyrillic 'a', a fullwidth 'p', the Kelvin sign, a superscript two.
BAD_NAMES = [
    "heart-failure\n",
    "heart\nfailure",
    "a/b",
    "..",
    "../outside",
    ".staging",
    "-leading-dash",
    "_leading_underscore",
    "Heart",
    "heart failure",
    "",
    "a" * 64,
    "he\u0430rt",
    "\uff50roduction",
    "\u212aelvin",
    "model\u00b2",
    "nul\x00",
]
GOOD_ALIASES = ["production", "staging", "canary-2", "a_b", "x" * 32]
BAD_ALIASES = [*BAD_NAMES, "1st", "7", "x" * 33]


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_is_model_name_accepts_names_by_the_rule(name):
    assert is_model_name(name)


@pytest.mark.parametrize("name", [*BAD_NAMES, None, 7])
def test_is_model_name_refuses_anything_else(name):
    assert not is_model_name(name)


@pytest.mark.parametrize("alias", GOOD_ALIASES)
def test_is_alias_accepts_aliases_by_the_rule(alias):
    assert is_alias(alias)


@pytest.mark.parametrize("alias", [*BAD_ALIASES, None])
def test_is_alias_refuses_anything_else_including_version_numbers(alias):
    assert not is_alias(alias)


@pytest.mark.parametrize(
    ("pattern", "check", "samples"),
    [
        (MODEL_NAME_PATTERN, is_model_name, GOOD_NAMES + BAD_NAMES),
        (ALIAS_PATTERN, is_alias, GOOD_ALIASES + BAD_ALIASES),
    ],
)
def test_pydantic_reads_each_pattern_as_python_does(pattern, check, samples):
    adapter = TypeAdapter(Annotated[str, Field(pattern=pattern)])
    for sample in samples:
        try:
            adapter.validate_python(sample)
            accepted = True
        except ValidationError:
            accepted = False
        assert accepted is check(sample), repr(sample)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "registry"


@pytest.fixture
def registry(root: Path) -> ModelRegistry:
    registry = ModelRegistry(LocalArtifactStore(root))
    registry.register("demo", FILES, stub_manifest())
    return registry


@pytest.mark.parametrize("name", BAD_NAMES)
def test_the_registry_refuses_to_register_a_bad_name_naming_the_field(registry, root, name):
    before = sorted(path.relative_to(root.parent) for path in root.parent.rglob("*"))
    with pytest.raises(RegistryError, match="invalid model name") as raised:
        registry.register(name, FILES, stub_manifest())
    assert [problem.field for problem in raised.value.problems] == ["name"]
    assert sorted(path.relative_to(root.parent) for path in root.parent.rglob("*")) == before


@pytest.mark.parametrize("name", BAD_NAMES)
def test_the_registry_reads_nothing_under_a_bad_name(registry, name):
    assert registry.list_versions(name) == []
    assert registry.aliases(name) == {}
    with pytest.raises(ModelNotFoundError):
        registry.get_version(name, 1)
    with pytest.raises(ModelNotFoundError):
        registry.read_file(name, 1, "manifest.json")
    with pytest.raises(ModelNotFoundError):
        registry.summarize_version(name, 1)
    with pytest.raises(ModelNotFoundError):
        registry.set_alias(name, "staging", 1)


def test_a_name_leading_out_of_the_registry_never_reads_there(registry, root):
    outside = root.parent / "versions" / "1"
    outside.mkdir(parents=True)
    (outside / "manifest.json").write_text('{"secret": true}')
    with pytest.raises(ModelNotFoundError):
        registry.read_file("..", 1, "manifest.json")
    with pytest.raises(ModelNotFoundError):
        registry.summarize_version("..", 1)


@pytest.mark.parametrize("alias", BAD_ALIASES)
def test_the_registry_refuses_a_bad_alias_naming_the_field(registry, root, alias):
    with pytest.raises(RegistryError, match="invalid alias") as raised:
        registry.set_alias("demo", alias, 1)
    assert raised.value.problems == [
        Problem("alias", "use a-z, 0-9, '-' and '_', starting with a letter, at most 32 characters")
    ]
    with pytest.raises(RegistryError, match="invalid alias"):
        registry.rollback("demo", alias)
    assert sorted(path.name for path in (root / "demo" / "aliases").iterdir()) == [
        "production.json"
    ]


def test_a_version_number_with_a_trailing_newline_is_not_that_version(registry):
    assert registry.resolve("demo", "1") == 1
    with pytest.raises(VersionNotFoundError):
        registry.resolve("demo", "1\n")


def test_a_version_registered_without_a_first_alias_takes_none(root):
    registry = ModelRegistry(LocalArtifactStore(root))
    version = registry.register("demo", FILES, stub_manifest(), first_alias=None)
    assert version.version == 1
    assert registry.aliases("demo") == {}
    with pytest.raises(VersionNotFoundError):
        registry.resolve("demo")
    registry.register("demo", FILES, stub_manifest())
    assert registry.aliases("demo") == {"production": 2}
