"""Full validation of one record against a version's features, naming every problem.

The request model of a version is a pydantic model generated from its feature spec: unknown
fields, wrong types and NaN or infinite numbers are refused, nullable features may be null
or absent. The typed decoder (``model/decoder.py``) accepts a subset of what this accepts,
so anything it refuses comes here to be accepted or explained.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
)

from tabops.errors import Problem
from tabops.model.predictor import Predictor
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


@lru_cache(maxsize=128)
def record_model_for(predictor: Predictor) -> type[BaseModel]:
    """The request model of a loaded version (built once per version)."""
    example = predictor.example() if len(predictor.examples) else None
    return build_record_model(predictor.name, predictor.spec, example)


def validate_record(
    predictor: Predictor, document: Any, prefix: str = ""
) -> tuple[dict[str, Any], list[Problem]]:
    """Validate one record against the version's request model; returns (values, problems)."""
    if not isinstance(document, dict):
        where = prefix or "body"
        return {}, [Problem(where, f"expected an object, got {type(document).__name__}")]
    try:
        record = record_model_for(predictor).model_validate(document)
    except ValidationError as exc:
        return {}, problems_from_pydantic(exc.errors(), prefix)
    return record.model_dump(), []


def problems_from_pydantic(errors: Sequence[Any], prefix: str = "") -> list[Problem]:
    """One problem per pydantic error, naming the field by its dotted path."""
    problems = []
    for error in errors:
        parts = [str(part) for part in error.get("loc", ()) if part != "body"]
        field = ".".join(parts)
        if prefix:
            field = f"{prefix}.{field}" if field else prefix
        message = str(error.get("msg", "is invalid"))
        kind = error.get("type")
        if kind == "missing":
            message = "field required"
        elif kind == "extra_forbidden":
            message = "unknown field"
        problems.append(Problem(field or "body", message))
    return problems
