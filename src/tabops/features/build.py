"""Computing a project's derived features, for a whole table or for one entity's rows.

The one implementation behind training, ``tabops features build`` and materialisation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tabops.errors import DataError, Problem
from tabops.features.definitions import FeatureDefinitions
from tabops.features.row import compute_row_feature
from tabops.features.window import compute_windows, to_datetimes


def compute_features(
    frame: pd.DataFrame,
    definitions: FeatureDefinitions,
    entity: str | None,
    timestamp: str | None,
) -> pd.DataFrame:
    """``frame`` with every derived feature appended, rows in their original order.

    Window features need the entity and timestamp columns; row features may read raw
    columns and any feature defined before them.

    Raises:
        DataError: a column the definitions read is missing, or window features are defined
            without an entity or timestamp column.
    """
    # A derived feature is always recomputed, never taken from the input: a window feature's
    # column is dropped first; a row feature may read the raw column it then replaces.
    clashes = [feature.name for feature in definitions.windows if feature.name in frame.columns]
    result = frame.drop(columns=clashes)
    if definitions.windows:
        if entity is None or timestamp is None:
            raise DataError(
                "window features need the project's entity and timestamp columns",
                [Problem("features.windows", "set entity: and timestamp: in tabops.yaml")],
            )
        windows = compute_windows(result, definitions.windows, entity, timestamp)
        result = pd.concat([result, windows], axis=1)
    for feature in definitions.rows:
        result[feature.name] = compute_row_feature(result, feature)
    return result


def latest_rows(table: pd.DataFrame, entity: str, timestamp: str | None) -> pd.DataFrame:
    """Each entity's latest row: greatest time, then last in the table among equal times.

    Rows without an entity are dropped; without a timestamp column, the last row wins.

    Raises:
        DataError: the entity (or timestamp) column is missing.
    """
    absent = [c for c in (entity, timestamp) if c is not None and c not in table.columns]
    if absent:
        raise DataError(
            f"the feature table has no column(s) {absent}",
            [Problem(c, "column is missing") for c in absent],
        )
    keep = table[entity].notna().to_numpy()
    if timestamp is not None:
        stamps = to_datetimes(table[timestamp], timestamp).to_numpy().view("i8")
        position = np.arange(len(table))
        # NaT sorts first (as the smallest int64), so a dated row beats an undated one
        order = np.lexsort((position, stamps))
    else:
        order = np.arange(len(table))
    ordered = table.iloc[order]
    ordered = ordered[keep[order]]
    return ordered.drop_duplicates(subset=[entity], keep="last").sort_index(kind="stable")
