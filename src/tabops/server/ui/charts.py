"""Small SVG charts drawn on the server: a heat map, step lines, lines over time and bars.

Each function takes plain numbers and returns escaped SVG markup, ready for a template. No
script, no ``style`` attribute (the pages' Content-Security-Policy forbids both): colours
are ``fill``/``stroke`` attributes or classes of ``tabops.css``/``monitoring.css``. Every
mark carries a ``<title>`` (the tooltip a pointer or a screen reader gets).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

__all__ = [
    "Line",
    "draw_bars",
    "draw_heat_map",
    "draw_lines",
    "draw_step_lines",
    "psi_colour",
]

_CELL_W, _CELL_H, _LABEL_W, _TOP = 22, 18, 150, 4
_NO_DATA = "#eef1f4"


@dataclass(frozen=True)
class Line:
    """One series of a chart: its name, values (None = no value there) and CSS class."""

    label: str
    values: Sequence[float | None]
    css: str
    is_dashed: bool = False


def psi_colour(psi: float | None, warn: float, alert: float) -> str:
    """A cell's fill: green below ``warn``, amber to ``alert``, red above (darker = more)."""
    if psi is None or not math.isfinite(psi):
        return _NO_DATA
    if psi < warn:
        share = psi / warn if warn > 0 else 0.0
        return _mix((218, 240, 222), (120, 190, 135), share)
    if psi < alert:
        share = (psi - warn) / (alert - warn) if alert > warn else 1.0
        return _mix((250, 224, 150), (226, 160, 40), share)
    share = min((psi - alert) / max(alert, 1e-9), 1.0)
    return _mix((238, 120, 110), (170, 30, 30), share)


def _mix(low: tuple[int, int, int], high: tuple[int, int, int], share: float) -> str:
    share = min(max(share, 0.0), 1.0)
    red, green, blue = (round(a + (b - a) * share) for a, b in zip(low, high, strict=True))
    return f"#{red:02x}{green:02x}{blue:02x}"


def _number(value: float | None, digits: int = 3) -> str:
    return "no data" if value is None else f"{value:.{digits}f}"


def draw_heat_map(
    rows: Sequence[str],
    columns: Sequence[str],
    values: Sequence[Sequence[float | None]],
    warn: float,
    alert: float,
    *,
    label: str,
) -> Markup:
    """Rows by columns of PSI cells, coloured against ``warn``/``alert``, each with a tooltip.

    Args:
        rows: Row names (features), top to bottom.
        columns: Column names (time buckets), left to right.
        values: ``values[row][column]``: the PSI, or None where nothing was measured.
        warn: The PSI from which a cell is a warning.
        alert: The PSI from which a cell is an alert.
        label: The chart's accessible name.
    """
    width = _LABEL_W + _CELL_W * len(columns) + 4
    height = _TOP + _CELL_H * len(rows) + 16
    parts = [
        f'<svg class="chart heat" viewBox="0 0 {width} {height}" width="{width}"'
        f' height="{height}" role="img" aria-label="{escape(label)}">'
    ]
    for index, name in enumerate(rows):
        y = _TOP + index * _CELL_H
        shown = name if len(name) <= 22 else name[:21] + "\N{HORIZONTAL ELLIPSIS}"
        parts.append(
            f'<text class="axis" x="{_LABEL_W - 6}" y="{y + _CELL_H - 5}"'
            f' text-anchor="end">{escape(shown)}<title>{escape(name)}</title></text>'
        )
        for column, when in enumerate(columns):
            psi = values[index][column]
            x = _LABEL_W + column * _CELL_W
            parts.append(
                f'<rect class="cell" x="{x}" y="{y}" width="{_CELL_W - 1}"'
                f' height="{_CELL_H - 1}" fill="{psi_colour(psi, warn, alert)}">'
                f"<title>{escape(name)}, {escape(when)}: PSI {_number(psi)}</title></rect>"
            )
    if columns:
        bottom = _TOP + _CELL_H * len(rows) + 12
        parts.append(f'<text class="axis" x="{_LABEL_W}" y="{bottom}">{escape(columns[0])}</text>')
        parts.append(
            f'<text class="axis" x="{width - 4}" y="{bottom}" text-anchor="end">'
            f"{escape(columns[-1])}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def _scale(value: float, low: float, high: float, start: float, end: float) -> float:
    share = 0.5 if high <= low else (value - low) / (high - low)
    return round(start + share * (end - start), 2)


def draw_step_lines(
    edges: Sequence[float], lines: Sequence[Line], *, label: str, width: int = 480
) -> Markup:
    """Histograms on shared bin ``edges`` as step lines (shares of each series per bin)."""
    height, left, bottom, top = 200, 40, 24, 8
    peak = max((v for line in lines for v in line.values if v is not None), default=0.0) or 1.0
    low, high = edges[0], edges[-1]
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}"'
        f' role="img" aria-label="{escape(label)}">',
        _axes(left, top, width - 8, height - bottom),
        f'<text class="axis" x="{left}" y="{height - 6}">{low:g}</text>',
        f'<text class="axis" x="{width - 8}" y="{height - 6}" text-anchor="end">{high:g}</text>',
        f'<text class="axis" x="{left - 4}" y="{top + 10}" text-anchor="end">{peak:.0%}</text>',
    ]
    for line in lines:
        points = []
        for index, share in enumerate(line.values):
            y = _scale(share or 0.0, 0.0, peak, height - bottom, top)
            x0 = _scale(edges[index], low, high, left, width - 8)
            x1 = _scale(edges[index + 1], low, high, left, width - 8)
            points.append(f"{x0},{y} {x1},{y}")
        parts.append(
            f'<polyline class="{escape(line.css)}" fill="none" points="{" ".join(points)}">'
            f"<title>{escape(line.label)}</title></polyline>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def _axes(left: float, top: float, right: float, bottom: float) -> str:
    return f'<path class="frame" fill="none" d="M{left},{top} V{bottom} H{right}"></path>'


def draw_lines(
    columns: Sequence[str],
    lines: Sequence[Line],
    *,
    label: str,
    low: float = 0.0,
    high: float = 1.0,
    width: int = 480,
) -> Markup:
    """Values over time (one point per column), each point a circle with a tooltip."""
    height, left, bottom, top = 180, 40, 20, 8
    count = max(len(columns), 1)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}"'
        f' role="img" aria-label="{escape(label)}">',
        _axes(left, top, width - 8, height - bottom),
        f'<text class="axis" x="{left - 4}" y="{top + 10}" text-anchor="end">{high:g}</text>',
        f'<text class="axis" x="{left - 4}" y="{height - bottom}" text-anchor="end">{low:g}</text>',
    ]
    if columns:
        parts.append(f'<text class="axis" x="{left}" y="{height - 4}">{escape(columns[0])}</text>')
        parts.append(
            f'<text class="axis" x="{width - 8}" y="{height - 4}" text-anchor="end">'
            f"{escape(columns[-1])}</text>"
        )
    for line in lines:
        points = [
            (_scale(index + 0.5, 0, count, left, width - 8), value, columns[index])
            for index, value in enumerate(line.values)
            if value is not None and math.isfinite(value)
        ]
        path = " ".join(
            f"{x},{_scale(value, low, high, height - bottom, top)}" for x, value, _ in points
        )
        dash = ' stroke-dasharray="5 3"' if line.is_dashed else ""
        if len(points) > 1:
            parts.append(
                f'<polyline class="{escape(line.css)}" fill="none"{dash} points="{path}"/>'
            )
        for x, value, when in points:
            y = _scale(value, low, high, height - bottom, top)
            parts.append(
                f'<circle class="point {escape(line.css)}" cx="{x}" cy="{y}" r="3">'
                f"<title>{escape(line.label)}, {escape(when)}: {value:.3f}</title></circle>"
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def draw_bars(
    columns: Sequence[str], values: Sequence[int], *, label: str, width: int = 480
) -> Markup:
    """One bar per column (counts), each with a tooltip."""
    height, left, bottom, top = 140, 40, 20, 8
    peak = max(values, default=0) or 1
    slot = (width - 8 - left) / max(len(columns), 1)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}"'
        f' role="img" aria-label="{escape(label)}">',
        _axes(left, top, width - 8, height - bottom),
        f'<text class="axis" x="{left - 4}" y="{top + 10}" text-anchor="end">{peak:,}</text>',
    ]
    for index, (when, value) in enumerate(zip(columns, values, strict=True)):
        y = _scale(value, 0, peak, height - bottom, top)
        x = round(left + index * slot + 1, 2)
        parts.append(
            f'<rect class="bar" x="{x}" y="{y}" width="{max(round(slot - 2, 2), 1)}"'
            f' height="{round(height - bottom - y, 2)}">'
            f"<title>{escape(when)}: {value:,} predictions</title></rect>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))
