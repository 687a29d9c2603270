"""MLServer serving the model with mlserver-sklearn, and the V2 inference requests it takes.

MLServer reads a ``settings.json`` and one ``model-settings.json`` per model from the folder
it starts in; the benchmark writes both into its work dir, binding every port (HTTP, gRPC,
metrics) to 127.0.0.1 and keeping inference in the server process. Requests follow the V2
protocol in two forms (``v2_requests.py``): one input per feature with the pandas content
type (the named columns the peers' pipeline selects), or one FP64 tensor of all features in
order (for the pipeline without the column selector).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from peers.environments import PeerEnvironment
from peers.models import BenchModel
from peers.processes import HOST, free_port
from peers.systems import BATCH_ROWS, MLSERVER, Endpoint, Server, write_json
from peers.v2_requests import read_output, v2_columns, v2_tensor

MLSERVER_TENSOR = "MLServer (1 tensor)"
# mlserver-sklearn answers predict() unless asked for this output.
OUTPUTS = ["predict_proba"]


def mlserver_servers(model: BenchModel, environment: PeerEnvironment, work: Path) -> list[Server]:
    """``mlserver start`` with mlserver-sklearn, no parallel workers; two request forms."""
    servers = []
    for system, form, pipeline, encode in (
        (MLSERVER, "columns", model.peer_pipeline, v2_columns),
        (MLSERVER_TENSOR, "tensor", model.tensor_pipeline, v2_tensor),
    ):
        folder = work / f"mlserver-{model.key}-{form}"
        write_json(
            folder / model.name / "model-settings.json",
            {
                "name": model.name,
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": str(pipeline)},
            },
        )
        single = write_json(folder / "single.json", encode(model.records[:1], OUTPUTS))
        batch = write_json(folder / "batch.json", encode(model.records[:BATCH_ROWS], OUTPUTS))
        path = f"/v2/models/{model.name}/infer"
        servers.append(
            Server(
                system,
                model.key,
                _mlserver_command(environment, folder),
                dict(os.environ),
                folder,
                Endpoint(path, single),
                Endpoint(path, batch),
                failure=environment.failure,
                read_probability=_v2_probability,
            )
        )
    return servers


def _mlserver_command(environment: PeerEnvironment, folder: Path) -> Callable[[int], list[str]]:
    def command(port: int) -> list[str]:
        settings = {
            "debug": False,
            "host": HOST,
            "http_port": port,
            "grpc_port": free_port(),
            "metrics_port": free_port(),
            # 0: inference runs in the server process, not in a pool of worker processes.
            "parallel_workers": 0,
        }
        write_json(folder / "settings.json", settings)
        return [str(environment.executable("mlserver")), "start", str(folder)]

    return command


def _v2_probability(answer: bytes) -> float:
    # predict_proba of one row: shape [1, 2], the positive class second.
    return read_output(answer, "predict_proba")[1]
