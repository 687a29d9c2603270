"""Dependencies of the routes, as named ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from tabops.config import Settings
from tabops.feature_store.base import FeatureStore
from tabops.jobs import JobService
from tabops.registry.versions import ModelRegistry
from tabops.server.fastpath import PredictEndpoints
from tabops.serving.core import ServingCore
from tabops.serving.deployment import Deployment


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


SettingsDep = Annotated[Settings, Depends(get_settings_dependency)]
DeploymentDep = Annotated[Deployment, Depends(get_deployment)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
JobsDep = Annotated[JobService, Depends(get_jobs)]
FeatureStoreDep = Annotated[FeatureStore, Depends(get_feature_store)]
CoreDep = Annotated[ServingCore, Depends(get_core)]
EndpointsDep = Annotated[PredictEndpoints, Depends(get_endpoints)]
