"""``tabops serve`` answering Open Inference Protocol (V2) requests, in three forms.

The same server and home as "tabops (uvicorn)", posted to ``/v2/models/{name}/infer``:
one tensor per feature (the form of MLServer's row), one ``[n, k]`` FP64 tensor (the form
of "MLServer (1 tensor)"), both JSON, and that tensor with the binary tensor data extension,
its outputs asked for in binary too. No outputs are named, so tabops answers its default
ones (probability and label), as ``/v1`` answers a decision.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from peers.models import BenchModel, tabops_environment
from peers.systems import BATCH_ROWS, Endpoint, Server, tabops_serve, write_json
from peers.v2_requests import read_output, v2_columns, v2_tensor, write_binary_tensor

TABOPS_V2_COLUMNS = "tabops V2 (per feature)"
TABOPS_V2_TENSOR = "tabops V2 (1 tensor)"
TABOPS_V2_BINARY = "tabops V2 (binary)"
TABOPS_V2 = (TABOPS_V2_COLUMNS, TABOPS_V2_TENSOR, TABOPS_V2_BINARY)

JsonEncoder = Callable[[list[dict[str, float]], list[str] | None], dict[str, Any]]


def tabops_v2_servers(model: BenchModel, home: Path, folder: Path) -> list[Server]:
    """``tabops serve`` over ``home`` for each request form; bodies are written to ``folder``."""
    path = f"/v2/models/{model.name}/infer"
    env = tabops_environment(home)
    endpoints = [
        _json_endpoints(model, path, folder / "columns", v2_columns),
        _json_endpoints(model, path, folder / "tensor", v2_tensor),
        _binary_endpoints(model, path, folder / "binary"),
    ]
    return [
        Server(
            system, model.key, tabops_serve, env, home, single, batch, read_probability=_probability
        )
        for system, (single, batch) in zip(TABOPS_V2, endpoints, strict=True)
    ]


def _json_endpoints(
    model: BenchModel, path: str, folder: Path, encode: JsonEncoder
) -> tuple[Endpoint, Endpoint]:
    single = write_json(folder / "single.json", encode(model.records[:1], None))
    batch = write_json(folder / "batch.json", encode(model.records[:BATCH_ROWS], None))
    return Endpoint(path, single), Endpoint(path, batch)


def _binary_endpoints(model: BenchModel, path: str, folder: Path) -> tuple[Endpoint, Endpoint]:
    single, batch = folder / "single.bin", folder / "batch.bin"
    single_media = write_binary_tensor(model.records[:1], single)
    batch_media = write_binary_tensor(model.records[:BATCH_ROWS], batch)
    return Endpoint(path, single, media=single_media), Endpoint(path, batch, media=batch_media)


def _probability(answer: bytes) -> float:
    return read_output(answer, "probability")[0]
