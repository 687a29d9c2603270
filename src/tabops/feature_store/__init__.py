"""The online feature store: the latest feature row per view and entity, read by id.

Folder rules: ``base`` holds the interface and the one conversion of a table into stored
rows, so every backend stores the same ids, values and digests; each other module is one
backend or one way in. Tables live in the metadata database, and nothing here imports a web
framework or the CLI toolkit.
"""

from tabops.feature_store.base import FeatureStore, MaterializeReport, OnlineRow, ViewSummary
from tabops.feature_store.importing import import_table
from tabops.feature_store.sql import SqlFeatureStore, open_feature_store

__all__ = [
    "FeatureStore",
    "MaterializeReport",
    "OnlineRow",
    "SqlFeatureStore",
    "ViewSummary",
    "import_table",
    "open_feature_store",
]
