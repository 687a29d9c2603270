"""Signed manifests: registration signs, loading checks, ``tabops models sign`` re-signs."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import Result
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tabops.cli.main import app as cli
from tabops.config import Settings, get_settings
from tabops.errors import ArtifactIntegrityError
from tabops.model.predictor import Predictor
from tabops.registry import ManifestSigner, ModelRegistry, open_registry
from tabops.registry.signing import canonical_content, sign_version
from tabops.server.app import create_app

MODEL = "heart-failure"
KEY = "a-test-signing-key-0123456789abcdef"
OTHER_KEY = "another-test-signing-key-fedcba9876543210"


def registry_with(home: Path, key: str | None) -> ModelRegistry:
    settings = Settings(home=home, security={"signing_key": key} if key else {})
    return open_registry(settings)


def manifest_path(home: Path, version: int) -> Path:
    return home / "registry" / MODEL / "versions" / str(version) / "manifest.json"


def read_manifest(home: Path, version: int) -> dict:
    document: dict = json.loads(manifest_path(home, version).read_text())
    return document


def register_copy(registry: ModelRegistry, version: int = 1) -> int:
    """Register again the files of an existing version; returns the new version number."""
    found = registry.get_version(MODEL, version)
    files = {file: registry.read_file(MODEL, version, file) for file in found.manifest.files}
    return registry.register(MODEL, files, found.manifest, first_alias=None).version


@pytest.fixture
def signed_home(home: Path) -> Path:
    """The trained home with a version 2 registered while the key was set."""
    assert register_copy(registry_with(home, KEY)) == 2
    return home


@pytest.fixture
def invoke(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Result]]:
    """Run ``tabops`` with TABOPS_HOME and TABOPS_SIGNING_KEY taken from the test."""
    runner = CliRunner()

    def run(home: Path, key: str | None, *args: object) -> Result:
        monkeypatch.setenv("TABOPS_HOME", str(home))
        if key is None:
            monkeypatch.delenv("TABOPS_SIGNING_KEY", raising=False)
        else:
            monkeypatch.setenv("TABOPS_SIGNING_KEY", key)
        get_settings.cache_clear()
        return runner.invoke(cli, [str(arg) for arg in args])

    yield run
    get_settings.cache_clear()


def test_a_version_registered_with_a_key_is_signed_and_loads(signed_home):
    document = read_manifest(signed_home, 2)
    signer = ManifestSigner(KEY)
    assert document["signature"]["algorithm"] == "hmac-sha256"
    assert document["signature"]["key_id"] == signer.key_id
    assert signer.has_signed(document)
    predictor = Predictor.load(registry_with(signed_home, KEY), MODEL, 2)
    assert predictor.version.manifest.signature is not None


def test_the_signature_covers_everything_but_itself(signed_home):
    document = read_manifest(signed_home, 2)
    signature = document["signature"]
    assert ManifestSigner(KEY).signature(document) == signature
    assert "signature" not in canonical_content(document).decode()
    document["signature"] = {**signature, "value": "0" * 64}
    assert ManifestSigner(KEY).signature(document) == signature


def test_re_indenting_a_signed_manifest_keeps_it_valid(signed_home):
    path = manifest_path(signed_home, 2)
    path.write_text(json.dumps(json.loads(path.read_text()), indent=None, sort_keys=True))
    Predictor.load(registry_with(signed_home, KEY), MODEL, 2)


def test_with_a_key_an_unsigned_version_is_refused(home):
    registry = registry_with(home, KEY)
    with pytest.raises(
        ArtifactIntegrityError, match=r"heart-failure:1: the manifest is not signed"
    ):
        Predictor.load(registry, MODEL, 1)


def test_with_a_key_a_manifest_changed_after_signing_is_refused(signed_home):
    path = manifest_path(signed_home, 2)
    document = json.loads(path.read_text())
    document["threshold"] = 0.01
    path.write_text(json.dumps(document, indent=2))
    with pytest.raises(ArtifactIntegrityError, match="changed after it was signed"):
        Predictor.load(registry_with(signed_home, KEY), MODEL, 2)


def test_with_a_key_a_string_no_encoding_can_hold_is_refused_not_a_crash(signed_home):
    path = manifest_path(signed_home, 2)
    document = json.loads(path.read_text())
    document["notes"] = ["\ud800"]  # a lone surrogate: valid JSON, not valid UTF-8
    path.write_text(json.dumps(document))
    with pytest.raises(ArtifactIntegrityError, match="changed after it was signed"):
        Predictor.load(registry_with(signed_home, KEY), MODEL, 2)


def test_with_a_key_a_forged_signature_without_a_change_is_refused(signed_home):
    path = manifest_path(signed_home, 2)
    document = json.loads(path.read_text())
    value = document["signature"]["value"]
    document["signature"]["value"] = ("1" if value[0] == "0" else "0") + value[1:]
    path.write_text(json.dumps(document, indent=2))
    with pytest.raises(ArtifactIntegrityError, match="signature does not match"):
        Predictor.load(registry_with(signed_home, KEY), MODEL, 2)


def test_a_version_signed_with_another_key_is_refused_naming_both_key_ids(signed_home):
    with pytest.raises(ArtifactIntegrityError) as caught:
        Predictor.load(registry_with(signed_home, OTHER_KEY), MODEL, 2)
    message = caught.value.message
    assert ManifestSigner(KEY).key_id in message
    assert ManifestSigner(OTHER_KEY).key_id in message


def test_a_signed_version_copied_under_another_number_is_refused(signed_home):
    source = manifest_path(signed_home, 2).parent
    target = source.parent / "3"
    target.mkdir()
    for file in source.iterdir():
        (target / file.name).write_bytes(file.read_bytes())
    with pytest.raises(ArtifactIntegrityError, match="is that of heart-failure:2"):
        Predictor.load(registry_with(signed_home, KEY), MODEL, 3)


def test_without_a_key_signed_and_unsigned_versions_load(signed_home):
    registry = registry_with(signed_home, None)
    assert Predictor.load(registry, MODEL, 1).version.manifest.signature is None
    assert Predictor.load(registry, MODEL, 2).version.manifest.signature is not None


def test_a_changed_model_file_is_still_refused_by_its_hash(signed_home):
    path = manifest_path(signed_home, 2).parent / "model.skops"
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(ArtifactIntegrityError, match=r"model\.skops does not match its sha256"):
        Predictor.load(registry_with(signed_home, KEY), MODEL, 2)


def test_a_signature_copied_into_a_new_registration_is_dropped(signed_home):
    registry = registry_with(signed_home, None)
    assert register_copy(registry, 2) == 3
    assert "signature" not in read_manifest(signed_home, 3)


def test_the_key_shows_nowhere(signed_home, caplog):
    caplog.set_level(logging.DEBUG)
    signer = ManifestSigner(KEY)
    assert KEY not in repr(signer)
    assert KEY not in manifest_path(signed_home, 2).read_text()
    with pytest.raises(ArtifactIntegrityError) as caught:
        Predictor.load(registry_with(signed_home, KEY), MODEL, 1)
    assert KEY not in str(caught.value)
    assert KEY not in repr(Settings(home=signed_home, security={"signing_key": KEY}))
    assert KEY not in caplog.text


def test_the_server_refuses_an_unsigned_production_version_like_a_hash_mismatch(home, caplog):
    settings = Settings(home=home, security={"signing_key": KEY})
    with (
        caplog.at_level(logging.ERROR, logger="tabops.server"),
        TestClient(create_app(settings)) as client,
    ):
        health = client.get("/v1/health").json()
        answer = client.post(f"/v1/models/{MODEL}/predict", json={"age": 60})
    [model] = [m for m in health["models"] if m["name"] == MODEL]
    assert model["status"] == "refused"
    assert "not signed" in model["detail"]
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "model_refused"
    assert "not serving heart-failure" in caplog.text
    assert KEY not in caplog.text


def test_sign_signs_every_version_and_the_server_then_serves(home, invoke):
    result = invoke(home, KEY, "models", "sign", MODEL)
    assert result.exit_code == 0, result.output
    assert f"{MODEL}:1 signed" in result.output
    assert ManifestSigner(KEY).has_signed(read_manifest(home, 1))
    again = invoke(home, KEY, "models", "sign", MODEL, "--version", 1)
    assert f"{MODEL}:1 unchanged" in again.output
    settings = Settings(home=home, security={"signing_key": KEY})
    with TestClient(create_app(settings)) as client:
        health = client.get("/v1/health").json()
    assert [m["status"] for m in health["models"] if m["name"] == MODEL] == ["loaded"]


def test_sign_without_a_key_says_how_to_set_one(home, invoke):
    result = invoke(home, None, "models", "sign", MODEL)
    assert result.exit_code == 1
    assert "TABOPS_SIGNING_KEY" in result.output
    assert "signature" not in read_manifest(home, 1)


def test_sign_refuses_a_version_whose_file_changed(home, invoke):
    path = manifest_path(home, 1).parent / "golden.parquet"
    path.write_bytes(path.read_bytes() + b"\0")
    before = manifest_path(home, 1).read_bytes()
    result = invoke(home, KEY, "models", "sign", MODEL)
    assert result.exit_code == 1
    assert "golden.parquet does not match its sha256" in result.output
    assert manifest_path(home, 1).read_bytes() == before


def test_rotation_re_signs_only_with_the_previous_key_or_force(signed_home, invoke, monkeypatch):
    before = manifest_path(signed_home, 2).read_bytes()
    refused = invoke(signed_home, OTHER_KEY, "models", "sign", MODEL, "--version", 2)
    assert refused.exit_code == 1
    assert "matches no key given" in refused.output
    assert manifest_path(signed_home, 2).read_bytes() == before

    monkeypatch.setenv("OLD_TABOPS_KEY", KEY)
    rotated = invoke(
        signed_home, OTHER_KEY, "models", "sign", MODEL, "--previous-key-env", "OLD_TABOPS_KEY"
    )
    assert rotated.exit_code == 0, rotated.output
    assert f"{MODEL}:2 re-signed" in rotated.output
    assert f"{MODEL}:1 signed" in rotated.output
    assert KEY not in rotated.output
    assert OTHER_KEY not in rotated.output
    Predictor.load(registry_with(signed_home, OTHER_KEY), MODEL, 2)
    with pytest.raises(ArtifactIntegrityError):
        Predictor.load(registry_with(signed_home, KEY), MODEL, 2)


def test_force_re_signs_a_version_signed_with_a_lost_key(signed_home):
    registry = registry_with(signed_home, OTHER_KEY)
    result = sign_version(registry, MODEL, 2, force=True)
    assert (result.status, result.key_id) == ("re-signed", ManifestSigner(OTHER_KEY).key_id)
    Predictor.load(registry, MODEL, 2)


def test_sign_refuses_a_manifest_listing_a_file_outside_its_version(signed_home):
    path = manifest_path(signed_home, 2)
    document = json.loads(path.read_text())
    document["files"]["../../other/x"] = "0" * 64
    path.write_text(json.dumps(document))
    with pytest.raises(ArtifactIntegrityError, match="lists"):
        sign_version(registry_with(signed_home, OTHER_KEY), MODEL, 2, force=True)
