"""``tabops serve``: the API on uvicorn, with its log format, metrics folder and access check.

Imports what it needs when it runs.
"""

from __future__ import annotations

import logging
import os
import shutil
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tabops.cli.output import console, reported_errors
from tabops.errors import TabopsError

if TYPE_CHECKING:
    from tabops.config import Settings


class LogFormat(StrEnum):
    """How ``tabops serve`` writes its log lines."""

    TEXT = "text"
    JSON = "json"


def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    workers: Annotated[
        int, typer.Option(min=1, help="Server processes, each with its own copy of the models.")
    ] = 1,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    access_log: Annotated[
        bool,
        typer.Option(
            help="Log every request (costs about a tenth of throughput); with JSON logs, one "
            "line of method, route, status, duration_ms and request_id."
        ),
    ] = False,
    log_format: Annotated[
        LogFormat,
        typer.Option(
            envvar="TABOPS_LOG_FORMAT",
            help="text, or json: each line one JSON object carrying the request's id.",
        ),
    ] = LogFormat.TEXT,
    insecure: Annotated[
        bool,
        typer.Option(
            help="Let anonymous callers in on a non-loopback address while no key exists."
        ),
    ] = False,
) -> None:
    """Serve every registered model over HTTP (API docs at /docs).

    Requests need an API key once one exists (`tabops keys create`). Until then a server on
    a loopback address lets anonymous callers in; on any other address it refuses to start
    unless --insecure is given (or TABOPS_AUTH=off turns checks off).

    uvicorn with uvloop and httptools: measured faster than granian for this app (see
    bench/README.md).
    """
    from logging.config import dictConfig

    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    from tabops.config import get_settings
    from tabops.logs import ACCESS_LOG_ENV, LOG_FORMAT_ENV, logging_config

    json_config = logging_config(log_level) if log_format is LogFormat.JSON else None
    if json_config is None:
        level = getattr(logging, log_level.upper(), logging.INFO)
        logging.basicConfig(level=level, format="%(levelname)s:     %(name)s: %(message)s")
    else:
        dictConfig(json_config)
    # The workers read how to log from the environment (the app's factory takes no arguments).
    os.environ[LOG_FORMAT_ENV] = log_format.value
    os.environ[ACCESS_LOG_ENV] = "true" if access_log else "false"
    settings = get_settings()
    bind_host = host or settings.serving.host
    bind_port = port or settings.serving.port
    # The app (in this process or each worker) reads its settings from the environment:
    # it must know the address it is bound to, to decide whether anonymous callers may in.
    os.environ["TABOPS_SERVING__HOST"] = bind_host
    if insecure:
        os.environ["TABOPS_SECURITY__INSECURE"] = "true"
    get_settings.cache_clear()
    with reported_errors():
        state = _access_state(get_settings())
    plural = "es" if workers > 1 else ""
    console.print(
        f"tabops serving on http://{bind_host}:{bind_port} (docs: /docs), {workers} process{plural}"
    )
    console.print(f"access: {state}")
    metrics_folder = _metrics_folder(settings.home, workers)
    try:
        uvicorn.run(
            "tabops.server.app:app_from_environment",
            factory=True,
            host=bind_host,
            port=bind_port,
            workers=workers,
            loop="uvloop",
            http="httptools",
            log_level=log_level,
            # With JSON logs, the app writes the access lines (with route and request id).
            access_log=access_log and json_config is None,
            log_config=LOGGING_CONFIG if json_config is None else json_config,
        )
    finally:
        if metrics_folder is not None:
            shutil.rmtree(metrics_folder, ignore_errors=True)


def _metrics_folder(home: Path, workers: int) -> Path | None:
    """An empty folder for the workers' metric files, named in ``PROMETHEUS_MULTIPROC_DIR``.

    Several workers each count in files of their own there, and ``/metrics`` merges them
    (prometheus-client's multiprocess mode, chosen when it is first imported: the variable
    is set before any worker starts). Folders of servers no longer running are removed.
    One worker counts in memory: None.
    """
    if workers == 1:
        return None
    import psutil

    root = home / "metrics"
    for folder in root.glob("*"):
        if folder.name.isdigit() and not psutil.pid_exists(int(folder.name)):
            shutil.rmtree(folder, ignore_errors=True)
    folder = root / str(os.getpid())
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    return folder


def _access_state(settings: Settings) -> str:
    """Who may call a server with ``settings``; refuses an open server off loopback.

    Raises:
        TabopsError: the server would listen beyond this machine with no key and without
            --insecure.
    """
    from tabops.database import open_database
    from tabops.security.access import AccessPolicy, describe_state
    from tabops.security.audit import AuditLog
    from tabops.security.keys import KeyStore

    engine = open_database(settings)
    try:
        keys = KeyStore(engine)
        policy = AccessPolicy.from_settings(settings, keys, AuditLog(engine))
        state = policy.state()
        if state == "keys" and not policy.open_while_no_keys and not keys.unrevoked():
            raise TabopsError(
                f"refusing to serve on {settings.serving.host}: no API key exists, so nobody "
                "could call this server. Create one first (tabops keys create NAME --scope "
                "admin), or pass --insecure to let anonymous callers in until one exists"
            )
    finally:
        engine.dispose()
    return describe_state(state)
