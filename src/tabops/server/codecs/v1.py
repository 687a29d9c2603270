"""The v1 JSON protocol: one record, ``{"records": [...]}``, and predictions by entity.

A body goes first to the version's typed decoder (msgspec, generated from the feature spec),
which parses and type-checks it in one pass and hands the core an encoded array. A body it
refuses goes through full validation, which either accepts it (then it is scored the same
way) or names every problem. Answers are written with orjson; batches above
``STREAM_ROWS`` are streamed in chunks.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import orjson

from tabops.errors import (
    BatchTooLargeError,
    EmptyBodyError,
    InvalidInputError,
    InvalidRequestError,
    MalformedBodyError,
    Problem,
)
from tabops.model.predictor import Predictor
from tabops.serving.context import RequestContext
from tabops.serving.core import EntityDecision, ServingCore
from tabops.serving.decisions import Decisions, row_suffix
from tabops.serving.hooks import FeatureRows

STREAM_ROWS = 2_000
_CHUNK_ROWS = 1_000
Answer = bytes | Iterator[bytes]
"""A whole JSON body, or its chunks for a streamed answer."""


async def predict_one(
    core: ServingCore, context: RequestContext, predictor: Predictor, body: bytes
) -> bytes:
    """The answer to one record, flat or under ``features``.

    Raises:
        EmptyBodyError, MalformedBodyError, InvalidRequestError, InvalidInputError.
    """
    lean = predictor.lean
    if lean is not None:
        values = lean.decode_one(body)
        if values is not None:
            features = (
                FeatureRows(predictor.feature_names, rows=[values]) if core.keeps_inputs else None
            )
            decisions = await core.decide_row(
                context, predictor, lean.encode([values])[0], features
            )
            return encode_one(decisions)
    document = unwrap_features(predictor, parse_json_object(body))
    record, problems = predictor.validator.check_record(document)
    if problems:
        raise InvalidInputError("the record is invalid", problems)
    return encode_one(await core.decide_records(context, predictor, [record]))


async def predict_batch(
    core: ServingCore, context: RequestContext, predictor: Predictor, body: bytes, max_rows: int
) -> Answer:
    """The answer to ``{"records": [...]}``, in the order of the records.

    Raises:
        EmptyBodyError, MalformedBodyError, InvalidRequestError, InvalidInputError,
        BatchTooLargeError.
    """
    lean = predictor.lean
    rows = lean.decode_batch(body) if lean is not None else None
    if rows is not None and lean is not None:
        check_batch_size(len(rows), max_rows)
        features = FeatureRows(predictor.feature_names, rows=rows) if core.keeps_inputs else None
        decisions = await core.decide_array(context, predictor, lean.encode(rows), features)
    else:
        records = validated_records(predictor, body, max_rows)
        decisions = await core.decide_records(context, predictor, records)
    return encode_batch(decisions)


async def predict_entity(
    core: ServingCore,
    context: RequestContext,
    predictor: Predictor,
    entity_id: str,
    overrides: dict[str, Any],
) -> bytes:
    """The answer for an entity: its stored features, overridden, scored."""
    return encode_entity(await core.decide_entity(context, predictor, entity_id, overrides))


def decode_records(predictor: Predictor, body: bytes, max_rows: int) -> list[dict[str, Any]]:
    """The validated records of ``{"records": [...]}``, as dicts of feature values.

    Raises:
        EmptyBodyError, MalformedBodyError, InvalidRequestError, InvalidInputError,
        BatchTooLargeError.
    """
    lean = predictor.lean
    rows = lean.decode_batch(body) if lean is not None else None
    if rows is None:
        return validated_records(predictor, body, max_rows)
    check_batch_size(len(rows), max_rows)
    names = predictor.feature_names
    return [dict(zip(names, row, strict=True)) for row in rows]


def encode_one(decisions: Decisions) -> bytes:
    """One decision as the v1 prediction document."""
    return orjson.dumps(prediction_document(decisions))


def prediction_document(decisions: Decisions, index: int = 0) -> dict[str, Any]:
    """The v1 fields of one decision (the request id travels in a header)."""
    label, class_name = decisions.positive if decisions.is_positive[index] else decisions.negative
    return {
        "prediction_id": decisions.id_prefix + row_suffix(decisions.first_index + index),
        "model": decisions.model,
        "version": decisions.version,
        "label": label,
        "class_name": class_name,
        "probability": decisions.probabilities[index],
        "threshold": decisions.threshold,
        "timestamp": decisions.timestamp,
    }


def encode_batch(decisions: Decisions) -> Answer:
    """A batch answer: the shared head, then one item per record; streamed when large."""
    head = orjson.dumps(decisions.head())
    if len(decisions) <= STREAM_ROWS:
        return head[:-1] + b',"predictions":' + orjson.dumps(decisions.items()) + b"}"
    return _stream(head, decisions)


def _stream(head: bytes, decisions: Decisions) -> Iterator[bytes]:
    yield head[:-1] + b',"predictions":['
    for start in range(0, len(decisions), _CHUNK_ROWS):
        chunk = orjson.dumps(decisions.items(start, start + _CHUNK_ROWS))[1:-1]
        yield chunk if start == 0 else b"," + chunk
    yield b"]}"


def encode_entity(found: EntityDecision) -> bytes:
    """A prediction by entity: the entity, the decision, and the features it was made from."""
    stored = found.stored
    return orjson.dumps(
        {
            "entity_id": stored.entity_id,
            "view": stored.view,
            **prediction_document(found.decisions),
            "features": found.record,
            "overridden": found.overridden,
            "event_time": stored.event_time.isoformat() if stored.event_time else None,
            "materialized_at": stored.materialized_at.isoformat(),
        }
    )


def parse_json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object.

    Raises:
        EmptyBodyError: nothing was sent.
        MalformedBodyError: the body is not JSON.
        InvalidRequestError: the JSON is not an object.
    """
    if not body.strip():
        raise EmptyBodyError(
            "the request body is empty; send a JSON object", [Problem("body", "empty")]
        )
    try:
        document = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MalformedBodyError(
            f"the request body is not valid JSON: {exc}",
            [Problem("body", f"not valid JSON: {exc}")],
        ) from exc
    if not isinstance(document, dict):
        raise InvalidRequestError(
            "the request body must be a JSON object",
            [Problem("body", f"expected an object, got {type(document).__name__}")],
        )
    return document


def unwrap_features(predictor: Predictor, document: dict[str, Any]) -> Any:
    """Accept ``{"features": {...}}`` as well as a flat record."""
    if (
        set(document) == {"features"}
        and "features" not in predictor.spec.feature_names
        and isinstance(document["features"], dict)
    ):
        return document["features"]
    return document


def check_batch_size(count: int, max_rows: int) -> None:
    """Refuse an empty batch (422) or one above ``max_rows`` (413)."""
    if not count:
        raise InvalidInputError("the batch is empty", [Problem("records", "must not be empty")])
    if count > max_rows:
        raise BatchTooLargeError(
            f"{count} records exceed the limit of {max_rows}; split the batch or submit a job",
            [Problem("records", f"at most {max_rows} records")],
        )


def validated_records(predictor: Predictor, body: bytes, max_rows: int) -> list[dict[str, Any]]:
    """Every record of a batch through full validation; every problem named at once."""
    document = parse_json_object(body)
    records = document.get("records")
    unknown = sorted(set(document) - {"records"})
    if unknown or not isinstance(records, list):
        problems = [Problem(key, "unknown field") for key in unknown]
        if not isinstance(records, list):
            problems.append(Problem("records", "field required: a list of records"))
        raise InvalidInputError("the batch is invalid", problems)
    check_batch_size(len(records), max_rows)
    valid, problems = [], []
    for index, item in enumerate(records):
        record, errors = predictor.validator.check_record(item, f"records[{index}]")
        valid.append(record)
        problems.extend(errors)
    if problems:
        raise InvalidInputError("some records are invalid", problems)
    return valid
