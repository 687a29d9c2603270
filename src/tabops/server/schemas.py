"""Wire models: request models generated from a feature spec, and response models.

The record model of a version documents its features in OpenAPI (types, ranges seen in
training, categories, an example); the records themselves are checked by
``tabops.validation``, whose rules the model describes.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, create_model

from tabops.names import ALIAS_PATTERN, ALIAS_RULE, is_alias
from tabops.schema import ColumnSpec, FeatureSpec, Kind


def _no_text_or_bool(value: Any) -> Any:
    if isinstance(value, str | bool):
        raise ValueError("Input should be a number")
    return value


def _within_int64(value: int) -> int:
    if not -(2**63) <= value < 2**63:
        raise ValueError("Input should be an integer between -2**63 and 2**63 - 1")
    return value


def _bool_as_int(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        raise ValueError("Input should be 0, 1, true or false")
    return value


def _field_type(column: ColumnSpec) -> Any:
    description = _describe(column)
    if column.kind is Kind.NUMERIC:
        return Annotated[float, Field(strict=True, allow_inf_nan=False, description=description)]
    if column.kind is Kind.INTEGER:
        return Annotated[
            int,
            Field(description=description),
            BeforeValidator(_no_text_or_bool),
            AfterValidator(_within_int64),
        ]
    if column.kind is Kind.BOOLEAN:
        # Field before the validator, so the bounds reach JSON Schema as minimum/maximum.
        return Annotated[
            int, Field(ge=0, le=1, description=description), BeforeValidator(_bool_as_int)
        ]
    return Annotated[str, Field(strict=True, description=description)]


def _describe(column: ColumnSpec) -> str:
    text = f"{column.kind.value}"
    if column.minimum is not None and column.maximum is not None:
        text += f"; seen in training from {column.minimum:g} to {column.maximum:g}"
    if column.categories:
        text += f"; categories: {', '.join(column.categories)}"
    if column.nullable:
        text += "; may be null or left out"
    return text


def build_record_model(
    model_name: str, spec: FeatureSpec, example: dict[str, Any] | None = None
) -> type[BaseModel]:
    """A pydantic model accepting exactly one record of the spec's features.

    Unknown fields, wrong types and NaN or infinite numbers are rejected; nullable features
    may be null or absent.
    """
    fields: dict[str, Any] = {}
    for column in spec.features:
        field_type = _field_type(column)
        fields[column.name] = (field_type | None, None) if column.nullable else (field_type, ...)
    title = "".join(part.capitalize() for part in model_name.replace("_", "-").split("-"))
    config = ConfigDict(
        extra="forbid",
        title=f"{title}Record",
        json_schema_extra={"examples": [example]} if example else None,
    )
    model: type[BaseModel] = create_model(f"{title}Record", __config__=config, **fields)
    return model


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


class AuthStateResponse(BaseModel):
    """Who may call the server."""

    state: Literal["off", "open", "keys"] = Field(
        description="off: no checks; open: no key exists yet, anonymous callers let in; "
        "keys: every request needs a key."
    )
    detail: str


class HealthResponse(BaseModel):
    """Process and model status."""

    status: str
    tabops_version: str
    uptime_seconds: float
    memory_rss_bytes: int
    default_model: str | None
    models: list[ServedModelResponse]
    auth: AuthStateResponse


class ModelSummaryResponse(BaseModel):
    """A registered model: versions, aliases and its production version's headline facts."""

    name: str
    versions: list[int]
    aliases: dict[str, int]
    production: dict[str, Any] | None


class VersionSummaryResponse(BaseModel):
    """One version in a model's listing: when it was made, its test metrics, what points at it."""

    version: int
    created: str | None
    metrics: dict[str, float]
    aliases: list[str]
    tags: list[str]


class AliasRequest(BaseModel):
    """Where an alias should point."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, description="The version number the alias is to point at.")


class AliasResponse(BaseModel):
    """An alias after it moved, and the version it pointed at before (null: it is new)."""

    name: str
    alias: str
    version: int
    previous: int | None


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
        default=None,
        description="Summary: rows and positives for scoring, metrics for training. A "
        "succeeded records job's own document (not the list) also holds `predictions`: the "
        "list when the result has at most 1,000 predictions and 512 KiB, else null, and "
        "the predictions are downloaded from `result_url`.",
    )
    result_url: str | None = Field(default=None, description="Download of the scored output.")
    errors_url: str | None = Field(
        default=None, description="Download of the rows that failed validation, if any."
    )
    error: str | None = Field(default=None, description="Why the job failed.")


# Control characters (NUL above all) have no place in a path: system calls refuse them.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _no_control_characters(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not hold control characters (NUL, newline, ...)")
    return value


def _valid_alias(value: str) -> str:
    if not is_alias(value):
        raise ValueError(f"invalid alias: {ALIAS_RULE}")
    return value


ServerPath = Annotated[
    str,
    Field(
        min_length=1,
        max_length=4096,
        json_schema_extra={"pattern": r"^[^\x00-\x1f\x7f-\x9f]+$"},
    ),
    AfterValidator(_no_control_characters),
]
Alias = Annotated[
    str, Field(json_schema_extra={"pattern": ALIAS_PATTERN}), AfterValidator(_valid_alias)
]


class TrainRequest(BaseModel):
    """A project to train, as paths on the server, under the folders it lets the API read.

    Relative paths start from the first of those folders (``TABOPS_PROJECT_ROOTS``).
    """

    model_config = ConfigDict(extra="forbid")

    project: ServerPath = Field(description="The project file (tabops.yaml) or its folder.")
    data: ServerPath | None = Field(default=None, description="Train on this table instead.")
    promote: Alias | None = Field(
        default=None,
        description="An alias (e.g. production) to point at the new version if every gate "
        "passes; without it the new version takes no alias, even as a model's first.",
        examples=["production"],
    )


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


class KeyRequest(BaseModel):
    """A key to create: its name, scope, and optionally models, lifetime and rate."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, description="Who or what holds the key.")
    scope: Literal["read", "predict", "admin"] = Field(
        description="read < predict < admin: each includes the ones before it."
    )
    models: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(
        default=None, min_length=1, description="The models the key may use; all if omitted."
    )
    expires: str | None = Field(
        default=None,
        max_length=40,
        description="A lifetime (90m, 12h, 30d, 2w) or an ISO date; never if omitted.",
    )
    rate_per_second: float | None = Field(
        default=None, gt=0, description="The key's own rate limit; the server's if omitted."
    )


class KeyResponse(BaseModel):
    """A key as stored (never its token or hash)."""

    id: str
    name: str
    prefix: str = Field(description="The start of the key's token, to recognise it.")
    scope: str
    models: list[str] | None
    rate_per_second: float | None
    created: datetime
    expires: datetime | None
    revoked: datetime | None
    status: Literal["active", "expired", "revoked"]


class KeyCreatedResponse(KeyResponse):
    """A new key, with its token: shown once, stored only as a hash."""

    token: str


class AuditEntryResponse(BaseModel):
    """One audited event."""

    at: datetime
    action: str = Field(description="The route (method and path) or the predict route's name.")
    target: str | None = Field(description="The model, key or job acted on.")
    outcome: str = Field(description="'ok', or the error code the request was answered with.")
    status: int
    key_id: str | None
    key_name: str | None
    client: str | None
    request_id: str | None
