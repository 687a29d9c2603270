"""Loading a feature table from a CSV, Parquet or SQLite file into an online store."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tabops.dataset import read_table, table_format
from tabops.errors import DataError
from tabops.feature_store.base import FeatureStore, MaterializeReport


def import_table(
    store: FeatureStore,
    view: str,
    source: Path,
    entity: str,
    event_time: str | None = None,
    *,
    table_name: str | None = None,
    drop: Sequence[str] = (),
) -> MaterializeReport:
    """Write the table in ``source`` to ``view``, one row per entity.

    Args:
        store: the online store to write to.
        view: the feature view's name.
        source: a CSV (optionally compressed), Parquet or SQLite file.
        entity: the column of entity ids.
        event_time: the column of event times, if any.
        table_name: the table to read from a SQLite file; needed when it holds several.
        drop: columns that are not features (a label, a free-text note).

    Returns:
        What the write did.

    Raises:
        DataError: the file, table or a named column is missing, or the table does not fit
            the store (see ``tabops.feature_store.base.prepare_rows``).
    """
    options: dict[str, Any] = {}
    if table_name is not None:
        if table_format(source) != "sqlite":
            raise DataError(f"{source.name} is not a SQLite file; table_name applies to those")
        options["table"] = table_name
    frame = read_table(source, options)
    missing = [name for name in drop if name not in frame.columns]
    if missing:
        raise DataError(f"{source.name} has no column {missing} to drop; it has {list(frame)}")
    return store.write(view, frame.drop(columns=list(drop)), entity, event_time)
