"""Window aggregates against a naive row-by-row reference, serving against training, latest rows.

The reference below loops over rows on purpose: it restates the semantics of
``tabops.features.window`` plainly, so the vectorised implementation is checked against
something obviously right rather than against itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tabops.features import FeatureDefinitions, compute_features, latest_rows

BASE = datetime(2024, 1, 1)
FUNCTIONS = ["count", "sum", "mean", "min", "max", "first", "last"]
WINDOWS: dict[str | None, timedelta | None] = {
    None: None,
    "1d": timedelta(days=1),
    "3D": timedelta(days=3),
    "36h": timedelta(hours=36),
    "2h": timedelta(hours=2),
}
EXACT = {"count", "min", "max", "first", "last"}
SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass
class Case:
    """A generated table: raw Python values for the reference, and the frame built from them."""

    entities: list[str | int | None]
    times: list[datetime | None]
    values: list[float]
    frame: pd.DataFrame


@st.composite
def cases(draw) -> Case:
    rows = draw(st.integers(min_value=1, max_value=40))
    pool = draw(st.integers(min_value=1, max_value=4))
    ids: list[str | int] = (
        list(range(1, pool + 1)) if draw(st.booleans()) else ["a", "b", "c", "d"][:pool]
    )
    entity = st.sampled_from([*ids, None]) if draw(st.booleans()) else st.sampled_from(ids)
    step = timedelta(days=1) if draw(st.booleans()) else timedelta(hours=1)
    horizon = draw(st.integers(min_value=0, max_value=10))
    offset = st.integers(min_value=0, max_value=horizon)
    time = offset.map(lambda k: BASE + k * step)
    if draw(st.booleans()):
        time = st.one_of(time, st.none())
    value = st.one_of(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), st.just(math.nan))
    entities = draw(st.lists(entity, min_size=rows, max_size=rows))
    times = draw(st.lists(time, min_size=rows, max_size=rows))
    values = draw(st.lists(value, min_size=rows, max_size=rows))
    if draw(st.booleans()):
        # ISO strings, with and without a time of day, as read from a CSV file
        long_form = draw(st.lists(st.booleans(), min_size=rows, max_size=rows))
        stamps: object = [
            None if t is None else t.isoformat() if t.hour or long else t.date().isoformat()
            for t, long in zip(times, long_form, strict=True)
        ]
    else:
        unit = draw(st.sampled_from(["datetime64[ns]", "datetime64[us]"]))
        stamps = pd.Series([pd.NaT if t is None else pd.Timestamp(t) for t in times], dtype=unit)
        stamps = stamps.to_numpy()
    frame = pd.DataFrame({"e": entities, "t": stamps, "v": values})
    return Case(entities, times, values, frame)


@st.composite
def definitions(draw) -> FeatureDefinitions:
    windows = []
    for number in range(draw(st.integers(min_value=1, max_value=5))):
        function = draw(st.sampled_from(FUNCTIONS))
        column = "v" if function != "count" or draw(st.booleans()) else None
        window = draw(st.sampled_from(list(WINDOWS)))
        feature = {"name": f"f{number}", "function": function, "column": column, "window": window}
        windows.append(feature)
    return FeatureDefinitions.model_validate({"windows": windows})


def reference(case: Case, function: str, column: str | None, window: str | None) -> list[float]:
    """The aggregate for every row, computed the slow and obvious way."""
    span = WINDOWS[window]
    out = []
    for entity, time in zip(case.entities, case.times, strict=True):
        if entity is None or time is None:
            out.append(math.nan)
            continue
        prior = [
            j
            for j, (other, then) in enumerate(zip(case.entities, case.times, strict=True))
            if other is not None
            and then is not None
            and other == entity
            and then < time
            and (span is None or then >= time - span)
        ]
        present = [case.values[j] for j in prior if not math.isnan(case.values[j])]
        chronological = sorted(prior, key=lambda j: (case.times[j], j))
        if function == "count":
            out.append(float(len(present) if column else len(prior)))
        elif function == "sum":
            out.append(math.fsum(present))
        elif function == "mean":
            out.append(math.fsum(present) / len(present) if present else math.nan)
        elif function == "min":
            out.append(min(present) if present else math.nan)
        elif function == "max":
            out.append(max(present) if present else math.nan)
        elif function == "first":
            out.append(case.values[chronological[0]] if prior else math.nan)
        else:
            out.append(case.values[chronological[-1]] if prior else math.nan)
    return out


def agrees(actual: float, expected: float, *, exact: bool) -> bool:
    if math.isnan(expected) or math.isnan(actual):
        return math.isnan(expected) and math.isnan(actual)
    if exact:
        return actual == expected
    return math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-6)


@SETTINGS
@given(case=cases(), features=definitions())
def test_window_aggregates_match_the_row_by_row_reference(case, features):
    result = compute_features(case.frame, features, "e", "t")

    for feature in features.windows:
        expected = reference(case, feature.function, feature.column, feature.window)
        actual = result[feature.name].to_numpy(dtype=float)
        exact = feature.function in EXACT
        wrong = [
            (i, actual[i], expected[i])
            for i in range(len(expected))
            if not agrees(actual[i], expected[i], exact=exact)
        ]
        assert not wrong, f"{feature.function} window={feature.window}: (row, got, want) {wrong}"


@SETTINGS
@given(case=cases(), features=definitions())
def test_window_aggregates_of_one_entity_alone_equal_its_rows_in_the_whole_table(case, features):
    whole = compute_features(case.frame, features, "e", "t")

    for entity in {e for e in case.entities if e is not None}:
        positions = [i for i, e in enumerate(case.entities) if e == entity]
        alone = compute_features(case.frame.iloc[positions], features, "e", "t")
        for name in features.names:
            served = alone[name].to_numpy(dtype=float)
            trained = whole[name].iloc[positions].to_numpy(dtype=float)
            assert np.array_equal(served, trained, equal_nan=True), (entity, name)


@SETTINGS
@given(case=cases())
def test_latest_rows_keeps_each_entitys_greatest_time_then_last_position(case):
    expected = set()
    for entity in {e for e in case.entities if e is not None}:
        rows = [i for i, e in enumerate(case.entities) if e == entity]
        dated = [i for i in rows if case.times[i] is not None]
        if dated:
            expected.add(max(dated, key=lambda i: (case.times[i], i)))
        else:
            expected.add(rows[-1])

    latest = latest_rows(case.frame, "e", "t")

    assert sorted(latest.index) == sorted(expected)
    assert latest["e"].is_unique
    assert latest["e"].notna().all()
