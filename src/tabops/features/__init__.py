"""Derived features: row features and entity-window aggregates, one implementation for all.

Rules for this package: pure functions of data frames, no I/O; whole columns at a time,
never a Python loop over rows; an aggregate only sees the entity's strictly earlier rows.
"""

from tabops.features.build import compute_features, latest_rows
from tabops.features.definitions import FeatureDefinitions, WindowFeature

__all__ = ["FeatureDefinitions", "WindowFeature", "compute_features", "latest_rows"]
