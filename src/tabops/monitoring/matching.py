"""Finding the logged prediction a label judges: by prediction id, or by entity and time.

Built on the prediction log's reading API (``segments.LogReader``): ids through ``locate``,
entities by one pass over the log's batches in the look-back window, keeping only rows of
the entities asked about, so memory follows the labels, not the log.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tabops.errors import Problem
from tabops.monitoring.feedback import LabelItem, LabelReport
from tabops.monitoring.layout import is_prediction_id
from tabops.monitoring.segments import LoggedRef, LogReader

_ENTITY_COLUMNS = [
    "prediction_id",
    "entity_id",
    "timestamp",
    "probability",
    "positive",
    "threshold",
]
_ONE_MICROSECOND = timedelta(microseconds=1)
_TIME: Final = "datetime64[us, UTC]"


_NOT_AN_ID = "not a prediction id: 32 hexadecimal digits"
_NO_TARGET = "give a prediction_id, or an entity_id and an event_time"
_NO_TIME = "required with an entity_id: an ISO 8601 time"


@dataclass(frozen=True, slots=True)
class LoggedMatch:
    """The logged prediction one label judges."""

    prediction_id: str
    ref: LoggedRef


def match_items(
    log: LogReader,
    model: str,
    items: Sequence[LabelItem],
    report: LabelReport,
    lookback: timedelta,
    where: tuple[str, int] = ("labels", 0),
) -> dict[int, LoggedMatch]:
    """The logged prediction of each item, by index; the others counted in ``report``.

    An item naming no prediction, or a malformed id, is a problem; one whose prediction is
    not in the log is unknown. ``where`` names the list and the index of ``items[0]`` in it,
    for the problems' fields (``labels[3].prediction_id``).
    """
    name, first = where
    by_id: dict[int, str] = {}
    by_entity: dict[int, tuple[str, datetime]] = {}
    for index, item in enumerate(items):
        if item.prediction_id is not None:
            identifier = item.prediction_id.strip().lower()
            if is_prediction_id(identifier):
                by_id[index] = identifier
            else:
                report.add_problem(Problem(f"{name}[{first + index}].prediction_id", _NOT_AN_ID))
        elif item.entity_id is not None and item.event_time is not None:
            by_entity[index] = (item.entity_id, _utc(item.event_time))
        elif item.entity_id is not None:
            report.add_problem(Problem(f"{name}[{first + index}].event_time", _NO_TIME))
        else:
            report.add_problem(Problem(f"{name}[{first + index}]", _NO_TARGET))
    found = match_ids(log, model, by_id)
    found.update(match_entities(log, model, by_entity, lookback))
    for index in sorted(by_id.keys() - found.keys()):
        report.add_unknown(by_id[index])
    for index in sorted(by_entity.keys() - found.keys()):
        entity, moment = by_entity[index]
        report.add_unknown(f"{entity}@{moment.isoformat()}")
    return found


def match_ids(log: LogReader, model: str, wanted: Mapping[int, str]) -> dict[int, LoggedMatch]:
    """The logged predictions of ``model`` with the given ids, by the caller's item index."""
    if not wanted:
        return {}
    found = log.locate(model, set(wanted.values()))
    return {
        index: LoggedMatch(identifier, found[identifier])
        for index, identifier in wanted.items()
        if identifier in found
    }


def match_entities(
    log: LogReader,
    model: str,
    wanted: Mapping[int, tuple[str, datetime]],
    lookback: timedelta,
) -> dict[int, LoggedMatch]:
    """For each (entity id, event time), ``model``'s latest prediction for that entity.

    A prediction matches when it was made at or before the event time and no more than
    ``lookback`` earlier; items with no such prediction are absent from the answer.
    """
    if not wanted:
        return {}
    items = pd.DataFrame(
        {
            "item": list(wanted),
            "entity_id": [entity for entity, _moment in wanted.values()],
            "event_time": pd.to_datetime([moment for _entity, moment in wanted.values()], utc=True),
        }
    )
    items["event_time"] = items["event_time"].astype(_TIME)
    items = items.sort_values("event_time", kind="stable")
    entities = pa.array(sorted(set(items["entity_id"])), pa.string())
    since = min(moment for _entity, moment in wanted.values()) - lookback
    until = max(moment for _entity, moment in wanted.values()) + _ONE_MICROSECOND
    best: pd.DataFrame | None = None
    for batch in log.batches(model, since=since, until=until, columns=_ENTITY_COLUMNS):
        rows = batch.filter(pc.fill_null(pc.is_in(batch.column("entity_id"), entities), False))
        if rows.num_rows == 0:
            continue
        joined = _latest_before(items, rows.to_pandas(), lookback)
        if best is not None:
            joined = pd.concat([best, joined], ignore_index=True)
        best = joined.sort_values("timestamp", kind="stable").drop_duplicates("item", keep="last")
    if best is None:
        return {}
    return {int(row["item"]): _match_of(row) for row in best.to_dict("records")}


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _latest_before(items: pd.DataFrame, rows: pd.DataFrame, lookback: timedelta) -> pd.DataFrame:
    """Each item's latest row of one batch within the window; items without one dropped."""
    rows["timestamp"] = rows["timestamp"].astype(_TIME)
    rows["entity_id"] = rows["entity_id"].astype(items["entity_id"].dtype)
    joined = pd.merge_asof(
        items,
        rows.sort_values("timestamp", kind="stable"),
        left_on="event_time",
        right_on="timestamp",
        by="entity_id",
        direction="backward",
        tolerance=pd.Timedelta(lookback),
        allow_exact_matches=True,
    )
    return joined.dropna(subset=["prediction_id"])


def _match_of(row: Mapping[Hashable, Any]) -> LoggedMatch:
    ref = LoggedRef(
        version=int(row["version"]),
        timestamp=pd.Timestamp(row["timestamp"]).to_pydatetime(),
        probability=float(row["probability"]),
        positive=bool(row["positive"]),
        threshold=float(row["threshold"]),
        entity_id=str(row["entity_id"]),
    )
    return LoggedMatch(str(row["prediction_id"]), ref)
