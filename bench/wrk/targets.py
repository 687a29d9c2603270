"""The V2 protocol's targets: tabops' V2 rows beside its ``/v1`` routes and MLServer.

For each model, scenario and V2 request form, the row's throughput over "tabops (uvicorn)"
(``/v1``, one record or ``{"records": [...]}``) and over MLServer sent the same form
(per feature: "MLServer"; one tensor: "MLServer (1 tensor)"; binary: "MLServer (1 tensor)",
its fastest form, as it is not sent binary data). Then the two targets, met or not: one
record at c16 over V2 at least 0.9 times ``/v1``, and the binary 1,000-row tensor at least
1.2 times the rows/s of a 1,000-record ``/v1`` batch.
"""

from __future__ import annotations

from peers.mlserver_peer import MLSERVER_TENSOR
from peers.systems import MLSERVER, TABOPS
from peers.tabops_v2 import TABOPS_V2, TABOPS_V2_BINARY, TABOPS_V2_COLUMNS, TABOPS_V2_TENSOR

from wrk.scenarios import SCENARIOS, HttpResult

SAME_FORM = {
    TABOPS_V2_COLUMNS: MLSERVER,
    TABOPS_V2_TENSOR: MLSERVER_TENSOR,
    TABOPS_V2_BINARY: MLSERVER_TENSOR,
}
SINGLE_C16 = SCENARIOS[1]
BATCH = SCENARIOS[2]
# (V2 rows, scenario, least ratio to /v1) for each target.
TARGETS = (
    (TABOPS_V2, SINGLE_C16.name, 0.9),
    ((TABOPS_V2_BINARY,), BATCH.name, 1.2),
)


def format_v2_table(results: list[HttpResult]) -> str:
    """Markdown: each V2 row's throughput over ``/v1``'s and over MLServer's same form."""
    throughput = {(r.system, r.model, r.scenario): r.throughput for r in results}
    lines = [
        "| model | scenario | V2 form | req/s or rows/s | x tabops /v1 | MLServer row "
        "| x MLServer |",
        "|---|---|---|---:|---:|---|---:|",
    ]
    for model in dict.fromkeys(r.model for r in results if r.system in TABOPS_V2):
        for scenario in SCENARIOS:
            for system in TABOPS_V2:
                value = throughput.get((system, model, scenario.name))
                if value is None:
                    continue
                v1 = throughput.get((TABOPS, model, scenario.name))
                peer = throughput.get((SAME_FORM[system], model, scenario.name))
                lines.append(
                    f"| {model} | {scenario.name} | {system} | {value:,.0f} "
                    f"| {_ratio(value, v1)} | {SAME_FORM[system]} | {_ratio(value, peer)} |"
                )
    return "\n".join(lines)


def format_v2_targets(results: list[HttpResult]) -> list[str]:
    """One line per model, target and V2 form: the ratio to ``/v1`` and whether it is met."""
    throughput = {(r.system, r.model, r.scenario): r.throughput for r in results}
    lines = []
    for model in dict.fromkeys(r.model for r in results if r.system in TABOPS_V2):
        for systems, scenario, least in TARGETS:
            v1 = throughput.get((TABOPS, model, scenario))
            for system in systems:
                value = throughput.get((system, model, scenario))
                if value is None or not v1:
                    continue
                verdict = "met" if value / v1 >= least else "NOT met"
                lines.append(
                    f"{model}, {scenario}: {system} / tabops (uvicorn) = {value / v1:.2f} "
                    f"(target >= {least}: {verdict})"
                )
    return lines


def _ratio(value: float, reference: float | None) -> str:
    return f"{value / reference:.2f}" if reference else ""
