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
from tabops.deployment import Deployment
from tabops.feature_store.base import FeatureStore
from tabops.feature_store.serving import EntityLookup
from tabops.feature_store.sql import SqlFeatureStore
from tabops.jobs import JobService
from tabops.registry.local import LocalArtifactStore
from tabops.registry.versions import ModelRegistry
from tabops.server.errors import install_error_handlers
from tabops.server.fastpath import FastPredict
from tabops.server.openapi import build_openapi
from tabops.server.predicting import Batchers
from tabops.server.routers import entities, features, health, jobs, models, predict, train

logger = logging.getLogger("tabops.server")


class TabopsAPI(FastAPI):
    """FastAPI, with predict requests for loaded versions answered before any middleware.

    Starlette's middleware stack and routing cost about 20 us a request, as much as
    scoring one: ``FastPredict`` answers those requests first, the rest go to FastAPI.
    """

    fast: FastPredict | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a predict request for a loaded version, or run the FastAPI app."""
        fast = self.fast
        if fast is not None:
            target = fast.match(scope)
            if target is not None:
                await fast.answer(target, receive, send)
                return
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings,
    deployment: Deployment | None = None,
    job_service: JobService | None = None,
    feature_store: FeatureStore | None = None,
) -> TabopsAPI:
    """An app serving the registry under ``settings.home`` (or the deployment given).

    Its job service (built from ``settings`` unless given) re-queues unfinished jobs at
    start-up and runs ``settings.job_workers`` job threads in this process.
    """
    if deployment is None:
        registry = ModelRegistry(LocalArtifactStore(settings.registry_path))
        deployment = Deployment(
            registry,
            settings.default_model,
            settings.alias_cache_seconds,
            threads=settings.onnx_threads,
        )
    served = deployment
    # One engine (one connection pool) serves the job records and the online store.
    engine = create_database_engine(settings.metadata_url)
    job_service = job_service or JobService.from_settings(settings, deployment, engine)
    store = feature_store or SqlFeatureStore(engine)

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
        await run_in_threadpool(job_service.queue.start, settings.job_workers)
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
    app.state.deployment = deployment
    app.state.batchers = Batchers(settings)
    app.state.jobs = job_service
    app.state.feature_store = store
    app.state.entity_lookup = EntityLookup(store)
    install_error_handlers(app)
    app.fast = FastPredict(
        deployment, app.state.batchers, settings.max_batch_rows, app.state.entity_lookup
    )
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
