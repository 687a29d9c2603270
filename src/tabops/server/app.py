"""The FastAPI application, built from settings by ``create_app``."""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from tabops import __version__
from tabops.config import Settings, get_settings
from tabops.database import open_database
from tabops.feature_store.base import FeatureStore
from tabops.feature_store.serving import EntityLookup
from tabops.feature_store.sql import open_feature_store
from tabops.jobs import JobService
from tabops.logs import LogOptions
from tabops.metrics import MetricsFlusher, is_multiprocess
from tabops.monitoring.log import PredictionLog
from tabops.monitoring.watch import Watch
from tabops.registry import open_registry
from tabops.security.access import AccessPolicy, describe_state
from tabops.security.audit import AuditLog
from tabops.security.keys import KeyStore
from tabops.server.browser import install_browser_defaults
from tabops.server.endpoints import PredictEndpoints
from tabops.server.errors import install_error_handlers
from tabops.server.fastpath import FastPredict
from tabops.server.limits import RequestLimits
from tabops.server.observability import RequestObserver
from tabops.server.observability import router as metrics_router
from tabops.server.openapi import build_openapi
from tabops.server.routers import (
    audit,
    entities,
    features,
    feedback,
    health,
    invocations,
    jobs,
    keys,
    models,
    monitoring,
    predict,
    predictions,
    train,
    v2,
    versions,
)
from tabops.server.ui.sessions import SessionStore
from tabops.server.ui.site import install_ui
from tabops.server.uploads import remove_stale_uploads, upload_folder
from tabops.serving.core import ServingCore
from tabops.serving.hooks import Hooks, allow_everyone

logger = logging.getLogger("tabops.server")


class TabopsAPI(FastAPI):
    """FastAPI, with predict requests answered before the middleware and routing.

    Starlette's middleware stack and routing cost about 20 us a request, as much as
    scoring one: ``FastPredict`` answers those requests first, through the same serving
    core and hooks as every route; the rest go to FastAPI, within ``limits``.
    """

    fast: FastPredict | None = None
    limits: RequestLimits | None = None
    observer: RequestObserver | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a predict request, or run the FastAPI app observed and within the limits."""
        fast = self.fast
        if fast is not None:
            target = fast.match(scope)
            if target is not None:
                await fast(target, scope, receive, send)
                return
        if self.observer is None:
            await self._limited(scope, receive, send)
        else:
            await self.observer(scope, receive, send, self._limited)

    async def _limited(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.limits is None:
            await super().__call__(scope, receive, send)
        else:
            await self.limits(scope, receive, send, super().__call__)


def create_app(
    settings: Settings,
    job_service: JobService | None = None,
    feature_store: FeatureStore | None = None,
    hooks: Hooks | None = None,
    log_options: LogOptions | None = None,
) -> TabopsAPI:
    """An app serving the registry under ``settings.home``.

    Every predict route, fast or not, every other route and every job goes through one
    ``ServingCore`` with ``hooks``; their ``authorize`` defaults to the API keys of the
    metadata database (``settings.security``), their sink to the prediction log under
    ``settings.home / "predictions"`` (``settings.monitoring``; written from start-up to
    shut-down, ``app.state.prediction_log``). Its job service (built from
    ``settings`` unless given) re-queues unfinished jobs at start-up and runs
    ``settings.queue.job_workers`` job threads in this process. Every answer carries an
    ``X-Request-ID`` and is counted for ``/metrics``; with JSON ``log_options`` that ask for
    it, each request also writes an access line.
    """
    registry = open_registry(settings)
    # One engine (one connection pool) serves the job records and the online store.
    engine = open_database(settings)
    store = feature_store or open_feature_store(settings, engine)
    key_store, audit_log = KeyStore(engine), AuditLog(engine)
    policy = AccessPolicy.from_settings(settings, key_store, audit_log)
    hooks = hooks or Hooks()
    prediction_log = None
    if hooks.sink is None and settings.monitoring.enabled:
        prediction_log = PredictionLog.from_settings(settings)
        hooks = replace(hooks, sink=prediction_log)
    if hooks.authorize is allow_everyone and policy.enabled:
        hooks = replace(hooks, authorize=policy)
    core = ServingCore.from_settings(settings, registry, hooks, EntityLookup(store))
    served = core.served_deployment()
    job_service = job_service or JobService.from_settings(settings, core, engine)
    watch = Watch.from_settings(settings, registry, engine)
    job_service.queue.every(
        settings.monitoring.check_interval_seconds, watch.check_all, "tabops.check_alerts"
    )

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
        logger.info("access: %s", describe_state(await run_in_threadpool(policy.state)))
        gc.freeze()
        stale = await run_in_threadpool(remove_stale_uploads, upload_folder(settings.home))
        if stale:
            logger.info("removed %d unfinished uploads left by a stopped server", stale)
        await run_in_threadpool(job_service.queue.start, settings.queue.job_workers)
        if prediction_log is not None:
            prediction_log.start()
        # Several workers: each adds its counts to the shared files on its own (metrics.py).
        flusher = MetricsFlusher() if is_multiprocess() else None
        if flusher is not None:
            flusher.start()
        try:
            yield
        finally:
            if flusher is not None:
                await run_in_threadpool(flusher.stop)
            await run_in_threadpool(audit_log.close)
            await run_in_threadpool(job_service.close)
            if prediction_log is not None:  # after the jobs, whose last pieces it logs
                await run_in_threadpool(prediction_log.close)
            if feature_store is None:  # opened here, so closed here
                await run_in_threadpool(store.close)

    app = TabopsAPI(
        title="tabops",
        version=__version__,
        description="Predictions from versioned tabular binary classifiers.",
        lifespan=lifespan,
        # Replaced by pages whose assets are served from here (server/browser.py).
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    app.state.settings = settings
    app.state.deployment = served
    app.state.core = core
    app.state.jobs = job_service
    app.state.feature_store = store
    app.state.policy = policy
    app.state.keys = key_store
    app.state.audit = audit_log
    app.state.prediction_log = prediction_log
    app.state.watch = watch
    app.state.prediction_reader = watch.monitor.log
    app.state.endpoints = PredictEndpoints(core, settings.serving.max_batch_rows)
    app.state.import_slots = threading.BoundedSemaphore(
        settings.security.max_concurrent_imports
    )  # model imports running over the API
    install_error_handlers(app)
    install_browser_defaults(app, settings.security.cors_origins)
    app.limits = RequestLimits.from_settings(settings)
    is_access_logged = (log_options or LogOptions()).is_json_access_logged
    app.observer = RequestObserver(is_access_logged=is_access_logged)
    app.fast = FastPredict(
        app.state.endpoints, entities=True, limits=app.limits, is_access_logged=is_access_logged
    )
    app.include_router(health.router)
    app.include_router(predict.router)
    app.include_router(invocations.router)
    app.include_router(models.router)
    app.include_router(versions.router)
    app.include_router(jobs.router)
    app.include_router(train.router)
    app.include_router(features.router)
    app.include_router(entities.router)
    app.include_router(keys.router)
    app.include_router(audit.router)
    app.include_router(predictions.router)
    app.include_router(feedback.router)
    app.include_router(monitoring.router)
    app.include_router(v2.router)
    app.include_router(metrics_router)
    install_ui(app, SessionStore(engine))

    def openapi() -> dict[str, Any]:
        # Rebuilt on every call: models load lazily, so the document follows what is served.
        return build_openapi(app, served)

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override hook
    return app


def app_from_environment() -> TabopsAPI:
    """The app for the ``TABOPS_*`` settings of this process (a factory for server workers)."""
    return create_app(get_settings(), log_options=LogOptions.from_environment())
