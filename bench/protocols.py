"""Protocols benchmark: the same records through /v1, MLflow's scoring routes and V2, in process.

Usage (from the repository root):
    .venv/bin/python bench/protocols.py [--rows 1000] [--repeats 200] [--home DIR]

Trains the heart-failure example once (quick settings) into a temporary home, or uses
``--home`` (a TABOPS_HOME holding a trained ``heart-failure``). Then calls the app's ASGI
entry directly, with no HTTP and no client in between, one request at a time, with the
prediction log on as a server runs by default: for one record and for ``--rows`` records,
each request form of each protocol, the median time per request over ``--repeats`` calls
after a warm-up. Every answer is checked to be a 200 before anything is timed. What HTTP
adds (the same for every form, apart from reading a larger body) is in ``serving.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from example_home import HEART_CSV, MODEL, train_example

from tabops.config import Settings
from tabops.server.app import create_app

JSON = "application/json"
Form = tuple[str, str, bytes, tuple[tuple[str, str], ...]]
"""(name, path, body, extra headers) of one request form."""
FLAGS = {"anaemia", "diabetes", "high_blood_pressure", "sex", "smoking"}
NUMBERS = {"age", "platelets", "serum_creatinine"}
SETTLE_SECONDS = 2.5  # longer than the prediction log's flush interval (1 s)


def v2_datatype(name: str) -> str:
    """The datatype the model metadata gives a feature of the example."""
    if name in FLAGS:
        return "BOOL"
    return "FP64" if name in NUMBERS else "INT64"


def per_feature(records: list[dict[str, Any]]) -> bytes:
    """One tensor per feature, as MLServer's tabular clients send records."""
    inputs = [
        {
            "name": name,
            "datatype": v2_datatype(name),
            "shape": [len(records), 1],
            "data": [bool(r[name]) if name in FLAGS else r[name] for r in records],
        }
        for name in records[0]
    ]
    return json.dumps({"inputs": inputs}).encode()


def matrix(records: list[dict[str, Any]]) -> np.ndarray:
    """The records as an ``[n, k]`` matrix, columns in the order the records name them."""
    return np.array([[float(value) for value in record.values()] for record in records])


def one_tensor(records: list[dict[str, Any]]) -> bytes:
    """One ``[n, k]`` FP64 tensor as JSON."""
    values = matrix(records)
    tensor = {"name": "x", "datatype": "FP64", "shape": list(values.shape)}
    return json.dumps({"inputs": [tensor | {"data": values.ravel().tolist()}]}).encode()


def binary_tensor(records: list[dict[str, Any]]) -> tuple[bytes, tuple[tuple[str, str], ...]]:
    """One ``[n, k]`` FP64 tensor as binary data, with the header that says where it starts."""
    values = matrix(records)
    data = values.astype("<f8").tobytes()
    tensor = {"name": "x", "datatype": "FP64", "shape": list(values.shape)}
    tensor["parameters"] = {"binary_data_size": len(data)}
    header = json.dumps({"inputs": [tensor]}).encode()
    extra = (("content-type", "application/octet-stream"),)
    return header + data, (*extra, ("inference-header-content-length", str(len(header))))


def forms(records: list[dict[str, Any]]) -> list[Form]:
    """Every request form of every protocol, for the same records."""
    v1 = f"/v1/models/{MODEL}"
    v2 = f"/v2/models/{MODEL}/infer"
    invocations = f"/v1/models/{MODEL}/invocations"
    json_type = (("content-type", JSON),)
    columns = list(records[0])
    split = {"columns": columns, "data": [list(record.values()) for record in records]}
    binary, binary_headers = binary_tensor(records)
    found: list[Form] = []
    if len(records) == 1:
        found.append(("/v1 predict", f"{v1}/predict", json.dumps(records[0]).encode(), json_type))
    found += [
        ("/v1 predict/batch", f"{v1}/predict/batch", _json({"records": records}), json_type),
        ("MLflow dataframe_records", invocations, _json({"dataframe_records": records}), json_type),
        ("MLflow dataframe_split", invocations, _json({"dataframe_split": split}), json_type),
        ("MLflow CSV", invocations, _csv(records), (("content-type", "text/csv"),)),
        ("V2 per feature", v2, per_feature(records), json_type),
        ("V2 one JSON tensor", v2, one_tensor(records), json_type),
        ("V2 binary tensor", v2, binary, binary_headers),
    ]
    return found


def _json(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()


def _csv(records: list[dict[str, Any]]) -> bytes:
    return pd.DataFrame(records).to_csv(index=False).encode()


Call = Callable[[str, bytes, tuple[tuple[str, str], ...]], Any]


def asgi_caller(app: Any) -> Call:
    """An awaitable call of the app's ASGI entry, returning the status it answered."""

    async def call(path: str, body: bytes, headers: tuple[tuple[str, str], ...]) -> int:
        scope = {
            "type": "http",
            "method": "POST",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "headers": [
                (b"content-length", str(len(body)).encode()),
                *((key.encode(), value.encode()) for key, value in headers),
            ],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "scheme": "http",
            "http_version": "1.1",
            "root_path": "",
        }
        status = 0

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app(scope, receive, send)
        return status

    return call


async def time_forms(app: Any, rows: int, repeats: int) -> list[tuple[str, int, float]]:
    """(form, records per request, median microseconds per request) for 1 and ``rows``."""
    frame = pd.read_csv(HEART_CSV).drop(columns=["DEATH_EVENT"])
    call = asgi_caller(app)
    results = []
    async with app.router.lifespan_context(app):
        for count in (1, rows):
            records = pd.concat([frame] * (count // len(frame) + 1)).head(count).to_dict("records")
            for name, path, body, headers in forms(records):
                status = await call(path, body, headers)
                if status != 200:
                    raise SystemExit(f"{name}: answered {status}, not 200")
                # The prediction log writes the previous form's rows once a second, on a
                # thread of its own: let it, so that its work is not timed as this form's.
                await asyncio.sleep(SETTLE_SECONDS)
                for _ in range(max(3, repeats // 10)):
                    await call(path, body, headers)
                times = []
                for _ in range(repeats):
                    started = time.perf_counter()
                    await call(path, body, headers)
                    times.append(time.perf_counter() - started)
                results.append((name, count, statistics.median(times) * 1e6))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000, help="records in the larger request")
    parser.add_argument("--repeats", type=int, default=200, help="timed calls per form")
    parser.add_argument("--home", type=Path, help="a TABOPS_HOME with heart-failure trained")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        home = args.home
        if home is None:
            home = Path(work) / "home"
            train_example(home, Path(work))
        app = create_app(Settings(home=home))
        results = asyncio.run(time_forms(app, args.rows, args.repeats))
    print(f"- python {platform.python_version()}, {platform.machine()}; {args.repeats} calls each")
    print("\n| form | records | µs per request | µs per record | throughput x /v1 |")
    print("|---|---:|---:|---:|---:|")
    for name, count, micros in results:
        baseline = next(m for n, c, m in results if c == count and n.startswith("/v1"))
        ratio = baseline / micros
        print(f"| {name} | {count:,} | {micros:,.1f} | {micros / count:,.2f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
