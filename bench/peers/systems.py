"""Every system under test: the command that serves a model, and the requests it is sent.

All of them answer a single record at a path and a batch of records at another. The
floors, tabops, the seed app and BentoML take the same bodies (a flat record;
``{"records": [...]}``); MLServer, in ``mlserver_peer.py``, and tabops' V2 rows, in
``tabops_v2.py``, take the V2 inference protocol.
tabops also runs over a copy of its home that holds an API key (``keys.py``), each request
carrying the key.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peers.environments import PeerEnvironment
from peers.keys import KeyedHome
from peers.models import BenchModel, tabops_environment
from peers.processes import HOST, Header

PEERS = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
BATCH_ROWS = 1_000
NO_MODEL = "-"

FLOOR_UVICORN = "floor (uvicorn)"
FLOOR_GRANIAN = "floor (granian)"
TABOPS = "tabops (uvicorn)"
TABOPS_KEY = "tabops (uvicorn, API key)"
TABOPS_NOLOG = "tabops (uvicorn, prediction log off)"
TABOPS_GRANIAN = "tabops (granian)"
SEED = "seed FastAPI"
BENTOML = "BentoML"
MLSERVER = "MLServer"

# The same uvicorn the floor runs on: uvloop, httptools, no access log.
UVICORN_FLAGS = [
    "--workers",
    "1",
    "--loop",
    "uvloop",
    "--http",
    "httptools",
    "--no-access-log",
    "--log-level",
    "warning",
]
# Where granian looks for a zero-argument app factory in tabops.server.app, in this order.
FACTORIES = ("create_app", "app_from_environment")
GRANIAN_FLAGS = ["--interface", "asgi", "--workers", "1", "--no-ws", "--log-level", "warning"]


@dataclass(frozen=True)
class Endpoint:
    """A URL path, the file holding the body POSTed to it, and headers sent along: a
    credential (``header``), and ``media``, describing a body other than JSON."""

    path: str
    body: Path
    header: Header | None = None
    media: tuple[Header, ...] = ()


@dataclass(frozen=True)
class Server:
    """How to serve one model with one system (``command`` takes the port)."""

    system: str
    model: str
    command: Callable[[int], list[str]]
    env: dict[str, str]
    cwd: Path
    single: Endpoint
    batch: Endpoint
    failure: str | None = None
    read_probability: Callable[[bytes], float] | None = None


def write_json(path: Path, document: Any) -> Path:
    """Write a compact JSON document, returning its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, separators=(",", ":")))
    return path


def record_bodies(model: BenchModel, folder: Path) -> tuple[Path, Path]:
    """A flat record, and ``{"records": [...]}`` of ``BATCH_ROWS`` records."""
    single = write_json(folder / "record.json", model.records[0])
    batch = write_json(folder / "records.json", {"records": model.records[:BATCH_ROWS]})
    return single, batch


def floor_servers(
    single: Path, batch: Path, granian_environment: PeerEnvironment | None
) -> list[Server]:
    """The bare ASGI app on uvicorn, and on granian from granian's virtualenv (if given)."""
    env = dict(os.environ)
    uvicorn = [str(BIN / "python"), "-m", "uvicorn", "floor:app", "--app-dir", str(PEERS)]
    servers = [
        Server(
            FLOOR_UVICORN,
            NO_MODEL,
            lambda port: [*uvicorn, "--host", HOST, "--port", str(port), *UVICORN_FLAGS],
            env,
            PEERS,
            Endpoint("/predict", single),
            Endpoint("/predict/batch", batch),
        )
    ]
    if granian_environment is None:
        return servers
    granian = [
        str(granian_environment.executable("granian")),
        *GRANIAN_FLAGS,
        "--working-dir",
        str(PEERS),
        "floor:app",
    ]
    servers.append(
        Server(
            FLOOR_GRANIAN,
            NO_MODEL,
            lambda port: [*granian, "--host", HOST, "--port", str(port)],
            env,
            PEERS,
            Endpoint("/predict", single),
            Endpoint("/predict/batch", batch),
            failure=granian_environment.failure,
        )
    )
    return servers


def tabops_servers(
    model: BenchModel,
    home: Path,
    single: Path,
    batch: Path,
    granian_environment: PeerEnvironment | None,
    keyed: KeyedHome | None = None,
) -> list[Server]:
    """``tabops serve`` (uvicorn), with the prediction log on and off; the same over
    ``keyed``, with its key; tabops on granian.

    ``keyed`` None leaves the API-key row out, ``granian_environment`` None the granian one.
    """
    single_path = f"/v1/models/{model.name}/predict"
    batch_path = f"/v1/models/{model.name}/predict/batch"
    endpoints = Endpoint(single_path, single), Endpoint(batch_path, batch)
    env = tabops_environment(home)
    command = tabops_serve
    servers = [
        Server(
            TABOPS, model.key, command, env, home, *endpoints, read_probability=_flat_probability
        ),
        Server(
            TABOPS_NOLOG,
            model.key,
            command,
            {**env, "TABOPS_MONITORING__ENABLED": "false"},
            home,
            *endpoints,
            read_probability=_flat_probability,
        ),
    ]
    if keyed is not None:
        servers.append(
            Server(
                TABOPS_KEY,
                model.key,
                command,
                tabops_environment(keyed.home),
                keyed.home,
                Endpoint(single_path, single, keyed.header),
                Endpoint(batch_path, batch, keyed.header),
                failure=keyed.failure,
                read_probability=_flat_probability,
            )
        )
    if granian_environment is not None:
        granian, failure = _tabops_granian_command(granian_environment)
        servers.append(
            Server(
                TABOPS_GRANIAN,
                model.key,
                granian,
                env,
                home,
                *endpoints,
                failure=failure,
                read_probability=_flat_probability,
            )
        )
    return servers


def tabops_serve(port: int) -> list[str]:
    """``tabops serve`` (uvicorn) on ``port`` of 127.0.0.1, from this virtualenv."""
    options = ["--host", HOST, "--port", str(port), "--log-level", "warning"]
    return [str(BIN / "tabops"), "serve", *options]


def _tabops_granian_command(
    environment: PeerEnvironment,
) -> tuple[Callable[[int], list[str]], str | None]:
    """tabops on granian: ``tabops serve --server granian`` if offered, else an app factory.

    Both run from granian's virtualenv (``environment``), where tabops is installed too.
    Returns the command and, when tabops cannot run on granian, the reason.
    """
    if environment.failure is not None:
        return (lambda port: []), environment.failure
    tabops = str(environment.executable("tabops"))
    usage = subprocess.run(
        [tabops, "serve", "--help"], capture_output=True, text=True, check=False
    ).stdout
    if "--server" in usage and "granian" in usage:
        serve = [tabops, "serve", "--server", "granian", "--host", HOST, "--log-level", "warning"]
        return (lambda port: [*serve, "--port", str(port)]), None
    factory = _tabops_app_factory()

    granian = [str(environment.executable("granian")), *GRANIAN_FLAGS, "--host", HOST]

    def command(port: int) -> list[str]:
        return [*granian, "--port", str(port), "--factory", f"tabops.server.app:{factory}"]

    if factory is None:
        return command, "create_app() needs settings, and there is no --server option"
    return command, None


def _tabops_app_factory() -> str | None:
    """The first of tabops' app factories that can be called with no argument."""
    from tabops.server import app

    for name in FACTORIES:
        factory = getattr(app, name, None)
        if factory is None:
            continue
        parameters = inspect.signature(factory).parameters.values()
        if all(parameter.default is not inspect.Parameter.empty for parameter in parameters):
            return name
    return None


def seed_server(model: BenchModel, single: Path, batch: Path) -> Server:
    """The seeds' FastAPI app on the floor's uvicorn."""
    app = [str(BIN / "python"), "-m", "uvicorn", "seed_fastapi:app", "--app-dir", str(PEERS)]
    return Server(
        SEED,
        model.key,
        lambda port: [*app, "--host", HOST, "--port", str(port), *UVICORN_FLAGS],
        _pipeline_env(model, model.peer_pipeline),
        PEERS,
        Endpoint("/predict", single),
        Endpoint("/predict/batch", batch),
        read_probability=_flat_probability,
    )


def bentoml_server(
    model: BenchModel, environment: PeerEnvironment, work: Path, single: Path, batch: Path
) -> Server:
    """``bentoml serve`` of ``bentoml_service.py`` in the BentoML virtualenv, one worker."""
    serve = [str(environment.executable("bentoml")), "serve", "bentoml_service:BenchModel"]
    env = {
        **_pipeline_env(model, model.peer_pipeline),
        "BENTOML_HOME": str(work / "bentoml-home"),
        "BENTOML_DO_NOT_TRACK": "True",
    }
    return Server(
        BENTOML,
        model.key,
        lambda port: [*serve, "--working-dir", str(PEERS), "--host", HOST, "--port", str(port)],
        env,
        PEERS,
        Endpoint("/predict", single),
        Endpoint("/predict/batch", batch),
        failure=environment.failure,
        read_probability=_flat_probability,
    )


def _flat_probability(answer: bytes) -> float:
    return float(json.loads(answer)["probability"])


def _pipeline_env(model: BenchModel, pipeline: Path) -> dict[str, str]:
    return {
        **os.environ,
        "BENCH_PIPELINE": str(pipeline),
        "BENCH_THRESHOLD": repr(model.threshold),
    }
