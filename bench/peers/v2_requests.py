"""Open Inference Protocol (V2) request bodies, in the forms the benchmark sends.

Three forms of the same records: one FP64 input per feature with the pandas content type
(named columns, like a JSON record), one ``[n, k]`` FP64 tensor of every feature in order,
and that tensor again with the binary tensor data extension: a JSON header, then the
tensor's values as raw little-endian FP64, the header's length sent in the
``Inference-Header-Content-Length`` HTTP header.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np

from peers.models import FEATURES
from peers.processes import Header

HEADER_LENGTH = "Inference-Header-Content-Length"
TENSOR_NAME = "features"


def v2_columns(records: list[dict[str, float]], outputs: list[str] | None) -> dict[str, Any]:
    """One FP64 input per feature; ``outputs`` None asks for the server's default outputs."""
    inputs = [
        {
            "name": name,
            "datatype": "FP64",
            "shape": [len(records)],
            "data": [record[name] for record in records],
        }
        for name in FEATURES
    ]
    return _with_outputs({"parameters": {"content_type": "pd"}, "inputs": inputs}, outputs)


def v2_tensor(records: list[dict[str, float]], outputs: list[str] | None) -> dict[str, Any]:
    """One ``[n, k]`` FP64 tensor, row after row, the features in order."""
    tensor = {
        "name": TENSOR_NAME,
        "datatype": "FP64",
        "shape": [len(records), len(FEATURES)],
        "data": [record[name] for record in records for name in FEATURES],
    }
    return _with_outputs({"inputs": [tensor]}, outputs)


def write_binary_tensor(records: list[dict[str, float]], path: Path) -> tuple[Header, ...]:
    """Write ``v2_tensor``'s request with its data as binary, outputs in binary too.

    Returns:
        The headers that describe the body: its content type and its JSON header's length.
    """
    document = v2_tensor(records, None)
    tensor = document["inputs"][0]
    data = np.asarray(tensor.pop("data"), dtype="<f8").tobytes()
    tensor["parameters"] = {"binary_data_size": len(data)}
    document["parameters"] = {"binary_data_output": True}
    header = json.dumps(document, separators=(",", ":")).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + data)
    return ("Content-Type", "application/octet-stream"), (HEADER_LENGTH, str(len(header)))


def read_output(answer: bytes, name: str) -> list[float]:
    """An output's values from a V2 answer, whether JSON or a JSON header and binary data.

    Raises:
        KeyError: the answer has no such output.
        ValueError: the answer is not a V2 answer.
    """
    # latin-1 maps every byte to one character, so the header's end is a byte offset.
    header, offset = json.JSONDecoder().raw_decode(answer.decode("latin-1"))
    for output in header["outputs"]:
        size = (output.get("parameters") or {}).get("binary_data_size")
        if output["name"] == name:
            if size is None:
                return [float(value) for value in output["data"]]
            if output["datatype"] != "FP64" or offset + size > len(answer):
                raise ValueError(f"output {name}: not {size} bytes of FP64 data")
            return list(struct.unpack_from(f"<{size // 8}d", answer, offset))
        offset += size or 0
    raise KeyError(name)


def _with_outputs(document: dict[str, Any], outputs: list[str] | None) -> dict[str, Any]:
    if outputs is not None:
        document["outputs"] = [{"name": name} for name in outputs]
    return document
