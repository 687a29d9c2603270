"""Calendar periods of a table's rows: weeks, months or quarters of each row's time, in UTC."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import numpy as np
import pandas as pd

from tabops.training.splits import parse_times

PeriodLength = Literal["week", "month", "quarter"]

# pandas period frequencies: weeks run Monday to Sunday, as ISO 8601 weeks do.
_FREQUENCIES: dict[str, str] = {"week": "W-SUN", "month": "M", "quarter": "Q"}


@dataclass(frozen=True)
class PeriodRows:
    """One calendar period: its label, its UTC bounds and the positions of its rows."""

    label: str
    start: datetime
    end: datetime
    positions: np.ndarray


@dataclass(frozen=True)
class PeriodSplit:
    """A table's rows grouped by period, in time order, and how many rows had no time."""

    periods: list[PeriodRows]
    undated: int


def split_periods(times: pd.Series, by: PeriodLength) -> PeriodSplit:
    """Group rows by the calendar period (UTC) of their time, earliest period first.

    Periods without rows are left out; rows whose time is missing or unreadable belong to
    no period and are counted as undated.

    Args:
        times: Each row's time (datetimes, or date strings; aware times are read in UTC).
        by: The period length.
    """
    frequency = _FREQUENCIES[by]
    values = parse_times(times).to_numpy(dtype="datetime64[ns]")
    dated = np.flatnonzero(~np.isnat(values))
    ordinals = pd.DatetimeIndex(values[dated]).to_period(frequency).asi8
    order = np.argsort(ordinals, kind="stable")
    unique, firsts = np.unique(ordinals[order], return_index=True)
    stops = [*firsts[1:], len(order)] if len(order) else []
    periods = []
    for ordinal, first, stop in zip(unique, firsts, stops, strict=True):
        period = pd.Period(ordinal=int(ordinal), freq=frequency)
        start = period.start_time.tz_localize(UTC).to_pydatetime()
        end = (period + 1).start_time.tz_localize(UTC).to_pydatetime()
        periods.append(PeriodRows(_label(start, by), start, end, dated[order[first:stop]]))
    return PeriodSplit(periods=periods, undated=len(values) - len(dated))


def _label(start: datetime, by: PeriodLength) -> str:
    """``2015-W03``, ``2015-03`` or ``2015-Q1``."""
    if by == "week":
        year, week, _day = start.isocalendar()
        return f"{year}-W{week:02d}"
    if by == "month":
        return f"{start:%Y-%m}"
    return f"{start.year}-Q{(start.month - 1) // 3 + 1}"
