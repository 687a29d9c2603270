"""Reference statistics of a registered version: stored with it, or built once and cached.

Versions trained by this release carry ``reference_stats.json`` (covered by the manifest's
sha256 list). Older ones only have ``reference.parquet``, the training sample: their
statistics are built from it once, scored by the version itself, and cached under
``<home>/monitoring/reference/<name>/<version>.json`` with the sample's sha256, so a cache
left over from another registry's version of the same number is rebuilt, not trusted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from tabops.atomic import write_bytes
from tabops.errors import ArtifactIntegrityError
from tabops.model.files import REFERENCE_FILE, REFERENCE_STATS_FILE, parquet_to_frame
from tabops.model.manifest import ModelVersion
from tabops.model.predictor import Predictor, VersionSource
from tabops.model.reference_stats import ReferenceStats, build_reference_stats
from tabops.schema import coerce_frame

Scorer = Callable[[pd.DataFrame], np.ndarray]
"""Feature rows -> positive-class probabilities (``Predictor.score_frame``)."""
_CACHE_STORE = "reference statistics cache"


def reference_cache_dir(home: Path) -> Path:
    """Where statistics built for older versions are cached under a TABOPS_HOME."""
    return home / "monitoring" / "reference"


def load_reference(
    registry: VersionSource,
    name: str,
    version: int,
    cache_dir: Path,
    score: Scorer | None = None,
) -> ReferenceStats:
    """A version's reference statistics: its own file, the cache, or built now and cached.

    Args:
        registry: Where the version is read from.
        name: The model.
        version: The version number.
        cache_dir: The cache root (``reference_cache_dir(home)``).
        score: Scores the reference sample when the statistics must be built; by default
            the version is loaded (and verified) to score it.

    Raises:
        ModelNotFoundError: no such model.
        VersionNotFoundError: no such version.
        ArtifactIntegrityError: a file does not match its sha256, or the version has
            neither statistics nor a sample to build them from.
    """
    found = registry.get_version(name, version)
    files = found.manifest.files
    if REFERENCE_STATS_FILE in files:
        data = _read_checked(registry, found, REFERENCE_STATS_FILE)
        return ReferenceStats.from_json(data, f"{found.ref} {REFERENCE_STATS_FILE}")
    if REFERENCE_FILE not in files:
        raise ArtifactIntegrityError(
            f"{found.ref} has no reference statistics and no reference sample to build them from"
        )
    path = cache_dir / name / f"{found.version}.json"
    cached = _read_cache(path, files[REFERENCE_FILE])
    if cached is not None:
        return cached
    stats = build_from_sample(registry, found, score)
    write_bytes(path, stats.to_json(), store=_CACHE_STORE)
    return stats


def build_from_sample(
    registry: VersionSource, found: ModelVersion, score: Scorer | None = None
) -> ReferenceStats:
    """Statistics of a version's stored training sample, its scores from the version itself.

    Raises:
        ArtifactIntegrityError: the sample does not match its sha256, or the version fails
            its checks when loaded to score it.
    """
    manifest = found.manifest
    sample = parquet_to_frame(_read_checked(registry, found, REFERENCE_FILE))
    spec = manifest.feature_spec
    rows = sample[spec.feature_names]
    if score is None:
        score = Predictor.load(registry, found.name, found.version).score_frame
    return build_reference_stats(
        coerce_frame(rows, spec),
        spec,
        np.asarray(score(rows), dtype="float64"),
        source="reference_sample",
        score_source="reference_sample",
        threshold=manifest.threshold,
        metrics=manifest.metrics,
        intervals=manifest.intervals,
        split_rows=manifest.data.rows if manifest.data is not None else None,
        built_from=manifest.files[REFERENCE_FILE],
    )


def _read_checked(registry: VersionSource, found: ModelVersion, file: str) -> bytes:
    """A file of the version, refused unless it matches the manifest's sha256."""
    try:
        data = registry.read_file(found.name, found.version, file)
    except FileNotFoundError as exc:
        raise ArtifactIntegrityError(f"{found.ref}: file {file} is missing") from exc
    if hashlib.sha256(data).hexdigest() != found.manifest.files[file]:
        raise ArtifactIntegrityError(f"{found.ref}: {file} does not match its sha256")
    return data


def _read_cache(path: Path, sample_sha256: str) -> ReferenceStats | None:
    """Cached statistics built from this very sample; None when absent, stale or unreadable."""
    try:
        stats = ReferenceStats.from_json(path.read_bytes(), str(path))
    except (OSError, ArtifactIntegrityError):
        return None
    return stats if stats.built_from == sample_sha256 else None
