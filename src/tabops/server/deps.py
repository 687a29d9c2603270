"""Dependencies of the routes, as named ``Annotated`` aliases."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Request

from tabops.config import Settings
from tabops.feature_store.base import FeatureStore
from tabops.jobs import JobService
from tabops.monitoring.segments import LogReader
from tabops.monitoring.watch import Watch
from tabops.registry.versions import ModelRegistry
from tabops.security.access import ANONYMOUS, AccessPolicy, Caller
from tabops.security.audit import AuditLog
from tabops.security.keys import KeyStore
from tabops.server.endpoints import PredictEndpoints
from tabops.server.fastpath import context_of
from tabops.serving.context import RequestContext
from tabops.serving.core import ServingCore
from tabops.serving.deployment import Deployment
from tabops.serving.hooks import ADMIN, PREDICT, READ


def get_settings_dependency(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


def get_deployment(request: Request) -> Deployment:
    """The deployment the app was created with."""
    deployment: Deployment = request.app.state.deployment
    return deployment


def get_registry(request: Request) -> ModelRegistry:
    """The registry behind the deployment."""
    return get_deployment(request).registry


def get_jobs(request: Request) -> JobService:
    """The job service the app was created with."""
    jobs: JobService = request.app.state.jobs
    return jobs


def get_feature_store(request: Request) -> FeatureStore:
    """The online feature store the app was created with."""
    store: FeatureStore = request.app.state.feature_store
    return store


def get_core(request: Request) -> ServingCore:
    """The serving core every predict route and job goes through."""
    core: ServingCore = request.app.state.core
    return core


def get_endpoints(request: Request) -> PredictEndpoints:
    """The predict routes over the serving core (shared with the fast path)."""
    endpoints: PredictEndpoints = request.app.state.endpoints
    return endpoints


def get_policy(request: Request) -> AccessPolicy:
    """Who may do what on this server (its keys, scopes and rate limits)."""
    policy: AccessPolicy = request.app.state.policy
    return policy


def get_keys(request: Request) -> KeyStore:
    """The API keys of the metadata database."""
    keys: KeyStore = request.app.state.keys
    return keys


def get_audit(request: Request) -> AuditLog:
    """The audit log of the metadata database."""
    audit: AuditLog = request.app.state.audit
    return audit


def get_watch(request: Request) -> Watch:
    """The app's monitoring: label store, monitor over the log, alert states and checker."""
    watch: Watch = request.app.state.watch
    return watch


def get_log_reader(request: Request) -> LogReader:
    """The reader of the app's prediction log."""
    reader: LogReader = request.app.state.prediction_reader
    return reader


def request_context(request: Request, route: str | None = None) -> RequestContext:
    """The request's context, made once: its id, key and peer, and its caller once allowed.

    Its route is ``route`` (the predict routes' short names, as the prediction sink sees
    them), else the method and path template (``POST /v1/train``), as the audit log names
    actions.
    """
    context: RequestContext | None = getattr(request.state, "context", None)
    if context is None:
        if route is None:
            template = getattr(request.scope.get("route"), "path", request.url.path)
            route = f"{request.method} {template}"
        context = context_of(request.scope, route)
        request.state.context = context
    return context


def _authorized(action: str) -> Callable[[Request], Awaitable[Caller]]:
    async def authorize(request: Request) -> Caller:
        # Async: the check is a hash and a dict lookup, not worth a thread hop.
        context = request_context(request)
        get_core(request).authorize(context, request.path_params.get("name"), action)
        return context.caller or ANONYMOUS

    authorize.__name__ = f"authorize_{action}"
    return authorize


T = TypeVar("T")


def _on_the_loop(read: Callable[[Request], T]) -> Callable[[Request], Awaitable[T]]:
    """``read`` as an async dependency, answered on the event loop.

    FastAPI runs a plain function dependency on a worker thread: a hop that costs far more
    than reading the app's state (hundreds of µs a request on this kind of machine).
    """

    async def dependency(request: Request) -> T:
        return read(request)

    dependency.__name__ = read.__name__
    return dependency


SettingsDep = Annotated[Settings, Depends(_on_the_loop(get_settings_dependency))]
DeploymentDep = Annotated[Deployment, Depends(_on_the_loop(get_deployment))]
RegistryDep = Annotated[ModelRegistry, Depends(_on_the_loop(get_registry))]
JobsDep = Annotated[JobService, Depends(_on_the_loop(get_jobs))]
FeatureStoreDep = Annotated[FeatureStore, Depends(_on_the_loop(get_feature_store))]
CoreDep = Annotated[ServingCore, Depends(_on_the_loop(get_core))]
EndpointsDep = Annotated[PredictEndpoints, Depends(_on_the_loop(get_endpoints))]
PolicyDep = Annotated[AccessPolicy, Depends(_on_the_loop(get_policy))]
KeysDep = Annotated[KeyStore, Depends(_on_the_loop(get_keys))]
AuditDep = Annotated[AuditLog, Depends(_on_the_loop(get_audit))]
ContextDep = Annotated[RequestContext, Depends(_on_the_loop(request_context))]
WatchDep = Annotated[Watch, Depends(_on_the_loop(get_watch))]
LogReaderDep = Annotated[LogReader, Depends(_on_the_loop(get_log_reader))]

ReadAccess = Annotated[Caller, Depends(_authorized(READ))]
"""The caller, once allowed to read models, versions, health detail and features (the
model in the path, if any, must be one its key may use)."""
PredictAccess = Annotated[Caller, Depends(_authorized(PREDICT))]
"""The caller, once allowed to predict and run scoring jobs."""
AdminAccess = Annotated[Caller, Depends(_authorized(ADMIN))]
"""The caller, once allowed to train, manage keys and read the audit log."""
