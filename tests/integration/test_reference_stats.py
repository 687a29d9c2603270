"""Reference statistics: stored by training, built once and cached for older versions."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from conftest import HEART_CSV
from tabops.errors import ArtifactIntegrityError
from tabops.model.files import REFERENCE_FILE, REFERENCE_STATS_FILE
from tabops.model.predictor import Predictor
from tabops.model.reference_stats import ReferenceStats
from tabops.monitoring.drift import DriftAccumulator
from tabops.monitoring.reference import load_reference, reference_cache_dir
from tabops.registry import LocalArtifactStore, ModelRegistry

OLD = Path(__file__).resolve().parent.parent / "data" / "registry-0.1.0"
MODEL = "heart-failure"


@pytest.fixture
def old_registry(tmp_path: Path) -> ModelRegistry:
    shutil.copytree(OLD / "registry", tmp_path / "registry")
    return ModelRegistry(LocalArtifactStore(tmp_path / "registry"))


def test_training_stores_statistics_covered_by_the_manifest_hashes(registry):
    version = registry.get_version(MODEL)
    manifest = version.manifest
    raw = registry.read_file(MODEL, version.version, REFERENCE_STATS_FILE)
    assert manifest.files[REFERENCE_STATS_FILE] == hashlib.sha256(raw).hexdigest()
    stats = ReferenceStats.from_json(raw)
    assert stats.source == "training"
    # Every training row, not the 1,000-row sample (heart-failure has fewer than 1,000).
    assert stats.rows == manifest.data.rows["train"]
    assert list(stats.features) == manifest.feature_spec.feature_names
    assert stats.features["anaemia"].kind == "boolean"
    assert stats.features["age"].kind == "numeric"
    assert sum(stats.features["age"].counts) == stats.rows
    assert stats.score is not None
    assert stats.score.source == "test"
    assert sum(stats.score.counts) == manifest.data.rows["test"]
    assert stats.threshold == manifest.threshold
    assert stats.metrics == manifest.metrics
    assert stats.intervals == manifest.intervals
    assert stats.split_rows == manifest.data.rows


def test_load_reference_reads_the_stored_file_without_caching(registry, home):
    cache = reference_cache_dir(home)
    stats = load_reference(registry, MODEL, 1, cache)
    assert stats.source == "training"
    assert not cache.exists()


def test_load_reference_refuses_a_changed_statistics_file(registry, home):
    path = home / "registry" / MODEL / "versions" / "1" / REFERENCE_STATS_FILE
    document = json.loads(path.read_bytes())
    document["threshold"] = 0.01
    path.write_text(json.dumps(document))
    with pytest.raises(ArtifactIntegrityError, match="does not match its sha256"):
        load_reference(registry, MODEL, 1, reference_cache_dir(home))


def test_same_data_as_training_shows_no_drift(registry):
    stats = load_reference(registry, MODEL, 1, Path("unused"))
    predictor = Predictor.load(registry, MODEL, 1)
    frame = pd.read_csv(HEART_CSV)[predictor.feature_names]
    batch = pa.record_batch(
        {
            **{
                f"features.{column.name}": (
                    pa.array(frame[column.name].to_numpy() > 0)
                    if column.kind == "boolean"
                    else pa.array(frame[column.name].to_numpy(dtype="float64"))
                )
                for column in predictor.spec.features
            },
            "probability": pa.array(predictor.score_frame(frame)),
        }
    )
    result = DriftAccumulator(stats).add_all([batch]).result()
    assert result.rows == len(frame)
    for name, drift in result.features.items():
        assert drift.psi is not None, name
        assert drift.psi < 0.1, (name, drift.psi)
    assert result.score_psi is not None


def test_old_version_gets_statistics_built_from_its_sample_and_cached(old_registry, tmp_path):
    cache = tmp_path / "cache"
    version = old_registry.get_version("legacy-hgb", 1)
    assert REFERENCE_STATS_FILE not in version.manifest.files
    sample = pd.read_parquet(OLD / "registry" / "legacy-hgb" / "versions" / "1" / REFERENCE_FILE)

    stats = load_reference(old_registry, "legacy-hgb", 1, cache)

    assert stats.source == "reference_sample"
    assert stats.rows == len(sample)
    assert stats.built_from == version.manifest.files[REFERENCE_FILE]
    assert stats.features["region"].kind == "categorical"
    assert stats.features["region"].nulls == int(sample["region"].isna().sum())
    assert stats.features["member"].kind == "boolean"
    assert stats.features["member"].counts[1] == int(sample["member"].sum())
    predictor = Predictor.load(old_registry, "legacy-hgb", 1)
    expected = np.bincount(
        np.minimum((predictor.score_frame(sample) * 20).astype(int), 19), minlength=20
    )
    assert stats.score is not None
    assert stats.score.source == "reference_sample"
    assert stats.score.counts == expected.tolist()
    assert stats.threshold == version.manifest.threshold
    assert stats.metrics == version.manifest.metrics
    cached = cache / "legacy-hgb" / "1.json"
    assert ReferenceStats.from_json(cached.read_bytes()) == stats


def test_old_version_statistics_come_from_the_cache_once_built(old_registry, tmp_path):
    cache = tmp_path / "cache"
    first = load_reference(old_registry, "legacy-lr", 1, cache)

    def refuse(_frame: pd.DataFrame) -> np.ndarray:
        raise AssertionError("the sample was scored again")

    assert load_reference(old_registry, "legacy-lr", 1, cache, score=refuse) == first


def test_a_cache_built_from_another_sample_is_rebuilt(old_registry, tmp_path):
    cache = tmp_path / "cache"
    path = cache / "legacy-lr" / "1.json"
    stale = load_reference(old_registry, "legacy-lr", 1, cache).model_copy(
        update={"built_from": "0" * 64, "rows": 1}
    )
    path.write_bytes(stale.to_json())
    rebuilt = load_reference(old_registry, "legacy-lr", 1, cache, score=lambda f: np.zeros(len(f)))
    assert rebuilt.built_from != "0" * 64
    assert rebuilt.score is not None
    assert rebuilt.score.counts[0] == rebuilt.rows
    assert ReferenceStats.from_json(path.read_bytes()) == rebuilt
    path.write_text("not json")
    assert load_reference(old_registry, "legacy-lr", 1, cache).rows == rebuilt.rows
