"""Wire models: request and response models of the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class PredictionResponse(BaseModel):
    """One prediction, as every predict endpoint answers it."""

    prediction_id: str
    model: str
    version: int
    label: Any = Field(description="The predicted target value.")
    class_name: str
    probability: float = Field(description="Probability of the positive class.")
    threshold: float
    timestamp: str


class BatchPredictionItem(BaseModel):
    """One row of a batch answer."""

    prediction_id: str
    label: Any
    class_name: str
    probability: float


class BatchPredictionResponse(BaseModel):
    """Predictions for a batch, in the order of the records sent."""

    model: str
    version: int
    threshold: float
    timestamp: str
    predictions: list[BatchPredictionItem]


class ErrorDetail(BaseModel):
    """Where and what."""

    field: str
    problem: str


class ErrorBody(BaseModel):
    """The body of every error."""

    code: str
    message: str
    details: list[ErrorDetail] = []


class ErrorResponse(BaseModel):
    """The one error shape of the API."""

    error: ErrorBody


class ServedModelResponse(BaseModel):
    """A model and the version this server answers with."""

    name: str
    version: int | None
    status: str
    detail: str | None = None
    runtime: str | None = Field(
        default=None, description="What scores requests: onnxruntime or scikit-learn."
    )


class HealthResponse(BaseModel):
    """Process and model status."""

    status: str
    tabops_version: str
    uptime_seconds: float
    memory_rss_bytes: int
    default_model: str | None
    models: list[ServedModelResponse]


class ModelSummaryResponse(BaseModel):
    """A registered model: versions, aliases and its production version's headline facts."""

    name: str
    versions: list[int]
    aliases: dict[str, int]
    production: dict[str, Any] | None


class ModelVersionResponse(BaseModel):
    """A version's manifest, as registered."""

    name: str
    version: int
    aliases: list[str]
    manifest: dict[str, Any]


class JobAcceptedResponse(BaseModel):
    """A job taken in: where to follow it."""

    job_id: str
    status: str
    status_url: str


class JobResponse(BaseModel):
    """A job's state, and its result once it has one."""

    job_id: str
    kind: str = Field(description="score (records or a file) or train.")
    status: str = Field(description="queued, running, succeeded or failed.")
    model: str | None
    version: int | None
    progress: float = Field(description="Share of the work done, 0 to 1.")
    attempts: int = Field(description="How many times a worker started it (more after a crash).")
    created: datetime
    started: datetime | None
    finished: datetime | None
    result: dict[str, Any] | None = Field(
        default=None, description="Summary; predictions for a records job; metrics for training."
    )
    result_url: str | None = Field(default=None, description="Download of the scored output.")
    errors_url: str | None = Field(
        default=None, description="Download of the rows that failed validation, if any."
    )
    error: str | None = Field(default=None, description="Why the job failed.")


class TrainRequest(BaseModel):
    """A project to train, as paths on the server."""

    model_config = ConfigDict(extra="forbid")

    project: str = Field(description="The project file (tabops.yaml) or its folder.")
    data: str | None = Field(default=None, description="Train on this table instead.")


class OnlineFeaturesResponse(BaseModel):
    """An entity's latest features, as stored."""

    view: str
    entity_id: str
    features: dict[str, Any]
    event_time: datetime | None = Field(description="When the row's event happened.")
    materialized_at: datetime = Field(description="When the row was written to the store.")


class FeatureViewResponse(BaseModel):
    """A view of the online store."""

    view: str
    entity: str
    features: list[str]
    entities: int
    updated: datetime


class EntityPredictionRequest(BaseModel):
    """Request-time values that replace stored ones."""

    model_config = ConfigDict(extra="forbid")

    overrides: dict[str, Any] = Field(default_factory=dict)


class EntityPredictionResponse(BaseModel):
    """A prediction from an entity's stored features."""

    entity_id: str
    view: str
    prediction_id: str
    model: str
    version: int
    label: Any
    class_name: str
    probability: float
    threshold: float
    features: dict[str, Any] = Field(description="The features the model was given.")
    overridden: list[str] = Field(description="Features taken from the request, not the store.")
    event_time: datetime | None
    materialized_at: datetime
    timestamp: str
