"""The UI's SVG charts: escaped, to scale, one tooltip per mark."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from tabops.server.ui.charts import (
    Line,
    draw_bars,
    draw_heat_map,
    draw_lines,
    draw_step_lines,
    psi_colour,
)

SVG = "{http://www.w3.org/2000/svg}"


def parsed(markup: str) -> ET.Element:
    return ET.fromstring(
        str(markup).replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1)
    )


def test_psi_colours_follow_the_warn_and_alert_cut_offs():
    ok, warn, alert = (psi_colour(psi, 0.1, 0.2) for psi in (0.05, 0.15, 0.3))
    assert len({ok, warn, alert}) == 3
    assert psi_colour(None, 0.1, 0.2) == psi_colour(float("nan"), 0.1, 0.2)
    assert psi_colour(0.1, 0.1, 0.2) == psi_colour(0.1000001, 0.1, 0.2)  # warn starts at warn
    assert psi_colour(5.0, 0.1, 0.2) == psi_colour(50.0, 0.1, 0.2)  # darkest red, capped


def test_the_heat_map_has_a_cell_and_tooltip_per_value_and_escapes_names():
    svg = parsed(
        draw_heat_map(
            ["a<b", "c"],
            ["t1", "t2", "t3"],
            [[0.01, None, 0.5], [0.0, 0.15, 0.2]],
            0.1,
            0.2,
            label="drift",
        )
    )
    cells = svg.findall(f"{SVG}rect")
    assert len(cells) == 6
    titles = [cell.find(f"{SVG}title").text for cell in cells]
    assert titles[0] == "a<b, t1: PSI 0.010"
    assert titles[1] == "a<b, t2: PSI no data"
    assert cells[2].get("fill") == psi_colour(0.5, 0.1, 0.2)
    assert svg.get("role") == "img"
    assert svg.get("aria-label") == "drift"


def test_step_lines_draw_each_bin_at_its_share():
    markup = draw_step_lines(
        [0.0, 0.5, 1.0], [Line("ref", [0.25, 0.75], "reference")], label="scores", width=240
    )
    [line] = parsed(markup).findall(f"{SVG}polyline")
    points = [tuple(map(float, p.split(","))) for p in line.get("points").split()]
    assert len(points) == 4
    # The tallest bin reaches the top of the plot; the other is a third as high above the floor.
    floor, top = 200 - 24, 8
    assert points[2][1] == pytest.approx(top)
    assert floor - points[0][1] == pytest.approx((floor - top) / 3, abs=0.01)


def test_lines_skip_missing_values_and_mark_estimates_dashed():
    markup = draw_lines(
        ["a", "b", "c"],
        [Line("auc", [0.5, None, 1.0], "m"), Line("auc estimate", [None, None, 0.7], "e", True)],
        label="performance",
    )
    svg = parsed(markup)
    circles = svg.findall(f"{SVG}circle")
    assert [c.find(f"{SVG}title").text for c in circles] == [
        "auc, a: 0.500",
        "auc, c: 1.000",
        "auc estimate, c: 0.700",
    ]
    [polyline] = svg.findall(f"{SVG}polyline")  # a single point draws no line
    assert polyline.get("stroke-dasharray") is None


def test_bars_are_as_tall_as_their_counts():
    svg = parsed(draw_bars(["x", "y"], [10, 5], label="traffic"))
    heights = [float(bar.get("height")) for bar in svg.findall(f"{SVG}rect")]
    assert heights[0] == pytest.approx(2 * heights[1])
    assert re.fullmatch(r"y: 5 predictions", svg.findall(f"{SVG}rect")[1].find(f"{SVG}title").text)
