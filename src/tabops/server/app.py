"""The FastAPI application, built from settings by ``create_app``."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from tabops import __version__
from tabops.config import Settings, get_settings
from tabops.database import create_database_engine
from tabops.feature_store.base import FeatureStore
from tabops.feature_store.serving import EntityLookup
from tabops.feature_store.sql import open_feature_store
from tabops.jobs import JobService
from tabops.registry import open_registry
from tabops.server.errors import install_error_handlers
from tabops.server.fastpath import FastPredict, PredictEndpoints
from tabops.server.openapi import build_openapi
from tabops.server.routers import entities, features, health, jobs, models, predict, train
from tabops.serving.core import ServingCore
from tabops.serving.hooks import Hooks

logger = logging.getLogger("tabops.server")


class TabopsAPI(FastAPI):
    """FastAPI, with predict requests answered before the middleware and routing.

    Starlette's middleware stack and routing cost about 20 us a request, as much as
    scoring one: ``FastPredict`` answers those requests first, through the same serving
    core and hooks as every route; the rest go to FastAPI.
    """

    fast: FastPredict | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a predict request, or run the FastAPI app."""
        fast = self.fast
        if fast is not None:
            target = fast.match(scope)
            if target is not None:
                await fast(target, scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings,
    job_service: JobService | None = None,
    feature_store: FeatureStore | None = None,
    hooks: Hooks | None = None,
) -> TabopsAPI:
    """An app serving the registry under ``settings.home``.

    Every predict route, fast or not, and every job goes through one ``ServingCore`` with
    ``hooks`` (everyone allowed, no sink, when None). Its job service (built from
    ``settings`` unless given) re-queues unfinished jobs at start-up and runs
    ``settings.queue.job_workers`` job threads in this process.
    """
    registry = open_registry(settings)
    # One engine (one connection pool) serves the job records and the online store.
    engine = create_database_engine(settings.metadata_url)
    store = feature_store or open_feature_store(settings, engine)
    core = ServingCore.from_settings(settings, registry, hooks, EntityLookup(store))
    served = core.served_deployment()
    job_service = job_service or JobService.from_settings(settings, core, engine)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        for model in await run_in_threadpool(served.warm):
            if model.status == "refused":
                logger.error("not serving %s: %s", model.name, model.detail)
            else:
                logger.info("serving %s version %s (%s)", model.name, model.version, model.status)
        # What is loaded now lives as long as the process: move it out of the collector's
        # sight, so collections triggered by requests walk only what requests allocate
        # (a full collection over the libraries' objects took milliseconds).
        gc.freeze()
        await run_in_threadpool(job_service.queue.start, settings.queue.job_workers)
        try:
            yield
        finally:
            await run_in_threadpool(job_service.close)
            if feature_store is None:  # opened here, so closed here
                await run_in_threadpool(store.close)

    app = TabopsAPI(
        title="tabops",
        version=__version__,
        description="Predictions from versioned tabular binary classifiers.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.deployment = served
    app.state.core = core
    app.state.jobs = job_service
    app.state.feature_store = store
    app.state.endpoints = PredictEndpoints(core, settings.serving.max_batch_rows)
    install_error_handlers(app)
    app.fast = FastPredict(app.state.endpoints, entities=True)
    app.include_router(health.router)
    app.include_router(predict.router)
    app.include_router(models.router)
    app.include_router(jobs.router)
    app.include_router(train.router)
    app.include_router(features.router)
    app.include_router(entities.router)

    def openapi() -> dict[str, Any]:
        # Rebuilt on every call: models load lazily, so the document follows what is served.
        return build_openapi(app, served)

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override hook
    return app


def app_from_environment() -> TabopsAPI:
    """The app for the ``TABOPS_*`` settings of this process (a factory for server workers)."""
    return create_app(get_settings())
