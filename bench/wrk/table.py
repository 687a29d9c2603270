"""The HTTP results as one markdown table, with throughput ratios to the reference systems.

Rows are grouped by scenario, then by model and system in the order they ran (the floors
ran first). A ratio divides the row's throughput by the reference system's for the same
model and scenario (the floors serve no model, so "x floor" compares across models); the
floor ratio is left out for batches, where the floor does no work per row. "x tabops" is
given for tabops' own rows only: what an API key, granian, or the V2 protocol does to
``tabops serve``.
"""

from __future__ import annotations

from peers.systems import (
    BENTOML,
    FLOOR_UVICORN,
    MLSERVER,
    NO_MODEL,
    SEED,
    TABOPS,
    TABOPS_GRANIAN,
    TABOPS_KEY,
)
from peers.tabops_v2 import TABOPS_V2

from wrk.scenarios import SCENARIOS, HttpResult

REFERENCES = {
    "x floor": FLOOR_UVICORN,
    "x tabops": TABOPS,
    "x seed": SEED,
    "x BentoML": BENTOML,
    "x MLServer": MLSERVER,
}
TABOPS_ROWS = frozenset({TABOPS, TABOPS_KEY, TABOPS_GRANIAN, *TABOPS_V2})
HEADER = ["system", "model", "scenario", "req/s or rows/s", "p50 ms", "p99 ms", *REFERENCES]


def format_http_table(results: list[HttpResult]) -> str:
    """Markdown: one row per scenario, model and system, with ratios to the references."""
    lines = [
        "| " + " | ".join([*HEADER, "notes"]) + " |",
        "|---|---|---|" + "---:|" * (len(HEADER) - 3) + "---|",
    ]
    scenarios = {scenario.name: index for index, scenario in enumerate(SCENARIOS)}
    models = {model: index for index, model in enumerate(dict.fromkeys(r.model for r in results))}
    for result in sorted(results, key=lambda r: (scenarios[r.scenario], models[r.model])):
        cells = [
            result.system,
            result.model,
            result.scenario,
            _number(result.throughput, "{:,.0f}"),
            _number(result.p50_ms, "{:.2f}"),
            _number(result.p99_ms, "{:.2f}"),
            *_ratios(result, results),
            result.note.replace("|", "/"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _ratios(result: HttpResult, results: list[HttpResult]) -> list[str]:
    throughput = {(r.system, r.model, r.scenario): r.throughput for r in results}
    cells = []
    for column, system in REFERENCES.items():
        model = NO_MODEL if system == FLOOR_UVICORN else result.model
        reference = throughput.get((system, model, result.scenario))
        is_batch_floor = column == "x floor" and result.rows_per_request > 1
        is_peer_of_tabops = system == TABOPS and result.system not in TABOPS_ROWS
        if result.throughput is None or not reference or is_batch_floor or is_peer_of_tabops:
            cells.append("")
        else:
            cells.append(f"{result.throughput / reference:.2f}")
    return cells


def _number(value: float | None, pattern: str) -> str:
    return "" if value is None else pattern.format(value)
