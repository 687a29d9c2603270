"""Answering predict requests: bytes in, JSON bytes out, shared by every predict route.

The lean path decodes the body with the version's typed decoder, encodes it without pandas,
scores it (micro-batched for single rows) and writes the answer with orjson. A body the lean
decoder refuses goes through full validation, which either accepts it (then it is scored the
same way) or names every problem in a 4xx.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
from starlette.concurrency import run_in_threadpool

from tabops.config import Settings
from tabops.errors import Problem
from tabops.feature_store.serving import EntityFeatures, EntityLookup
from tabops.predictor import Predictor
from tabops.server.batching import MicroBatcher
from tabops.server.errors import RequestBodyError
from tabops.server.records import parse_json_object, unwrap_features, validate_record

# Batches above this many rows are scored on a worker thread, and their answer is streamed.
THREAD_ROWS = 2_000
STREAM_ROWS = 2_000
_CHUNK_ROWS = 1_000
_SUFFIXES: list[str] = []


class Batchers:
    """One micro-batcher per loaded version, created on first use."""

    def __init__(self, settings: Settings) -> None:
        self.max_rows = settings.micro_batch_rows
        self.max_wait = settings.micro_batch_wait_ms / 1000
        self._batchers: dict[Predictor, MicroBatcher] = {}

    def get(self, predictor: Predictor) -> MicroBatcher | None:
        """The batcher of a version, or None when micro-batching is off."""
        if self.max_rows <= 1:
            return None
        batcher = self._batchers.get(predictor)
        if batcher is None:
            batcher = MicroBatcher(
                predictor.score_encoded, max_rows=self.max_rows, max_wait=self.max_wait
            )
            self._batchers[predictor] = batcher
        return batcher


def _now() -> str:
    return datetime.now(UTC).isoformat()


async def predict_one(predictor: Predictor, body: bytes, batcher: MicroBatcher | None) -> bytes:
    """The JSON answer for one record (flat or under ``features``).

    Raises:
        RequestBodyError: an empty, malformed or invalid body.
    """
    row = _encode_one(predictor, body)
    if row is None:  # a version without an encoder: the frame path on a worker thread
        record = _validated_record(predictor, body)
        probability = (await run_in_threadpool(predictor.predict_records, [record]))[0].probability
    elif batcher is not None:
        probability = await batcher.score(row)
    else:
        probability = float(predictor.score_encoded(row.reshape(1, -1))[0])
    return orjson.dumps(_decision(predictor, probability))


def _decision(predictor: Predictor, probability: float) -> dict[str, Any]:
    """The answer to one record: the version, the decision and its probability."""
    positive = probability >= predictor.threshold
    label, class_name = predictor.positive if positive else predictor.negative
    return {
        "prediction_id": secrets.token_hex(16),
        "model": predictor.name,
        "version": predictor.version.version,
        "label": label,
        "class_name": class_name,
        "probability": probability,
        "threshold": predictor.threshold,
        "timestamp": _now(),
    }


def _encode_one(predictor: Predictor, body: bytes) -> np.ndarray | None:
    lean = predictor.lean
    if lean is None:
        return None
    values = lean.decode_one(body)
    if values is not None:
        encoded: np.ndarray = lean.encode([values])[0]
        return encoded
    record = _validated_record(predictor, body)
    encoded = predictor.encode_records([record])[0]
    return encoded


def _validated_record(predictor: Predictor, body: bytes) -> dict[str, Any]:
    document = unwrap_features(predictor, parse_json_object(body))
    record, problems = validate_record(predictor, document)
    if problems:
        raise RequestBodyError(422, "invalid_input", "the record is invalid", problems)
    return record


async def predict_batch(
    predictor: Predictor, body: bytes, max_rows: int
) -> bytes | Iterator[bytes]:
    """The JSON answer for ``{"records": [...]}``: bytes, or chunks for large batches.

    Raises:
        RequestBodyError: a malformed body, an empty or oversized batch, invalid records.
    """
    lean = predictor.lean
    rows = lean.decode_batch(body) if lean is not None else None
    if rows is not None and lean is not None:
        _check_size(len(rows), max_rows)
        encoded = lean.encode(rows)
        count = len(rows)
    else:
        records = _validated_records(predictor, body, max_rows)
        count = len(records)
        if lean is None:
            predictions = await run_in_threadpool(predictor.predict_records, records)
            return _batch_answer(predictor, [p.probability for p in predictions])
        encoded = predictor.encode_records(records)
    if count > THREAD_ROWS:
        probabilities = await run_in_threadpool(predictor.score_encoded, encoded)
    else:
        probabilities = predictor.score_encoded(encoded)
    return _batch_answer(predictor, probabilities.tolist())


def decode_records(predictor: Predictor, body: bytes, max_rows: int) -> list[dict[str, Any]]:
    """The validated records of ``{"records": [...]}``, as dicts of feature values.

    Raises:
        RequestBodyError: a malformed body, an empty or oversized batch, invalid records.
    """
    lean = predictor.lean
    rows = lean.decode_batch(body) if lean is not None else None
    if rows is None:
        return _validated_records(predictor, body, max_rows)
    _check_size(len(rows), max_rows)
    names = predictor.spec.feature_names
    return [dict(zip(names, row, strict=True)) for row in rows]


def _check_size(count: int, max_rows: int) -> None:
    if not count:
        raise RequestBodyError(
            422, "invalid_input", "the batch is empty", [Problem("records", "must not be empty")]
        )
    if count > max_rows:
        raise RequestBodyError(
            413,
            "batch_too_large",
            f"{count} records exceed the limit of {max_rows}; split the batch or submit a job",
            [Problem("records", f"at most {max_rows} records")],
        )


def _validated_records(predictor: Predictor, body: bytes, max_rows: int) -> list[dict[str, Any]]:
    document = parse_json_object(body)
    records = document.get("records")
    unknown = sorted(set(document) - {"records"})
    if unknown or not isinstance(records, list):
        problems = [Problem(key, "unknown field") for key in unknown]
        if not isinstance(records, list):
            problems.append(Problem("records", "field required: a list of records"))
        raise RequestBodyError(422, "invalid_input", "the batch is invalid", problems)
    _check_size(len(records), max_rows)
    valid, problems = [], []
    for index, item in enumerate(records):
        record, errors = validate_record(predictor, item, prefix=f"records[{index}]")
        valid.append(record)
        problems.extend(errors)
    if problems:
        raise RequestBodyError(422, "invalid_input", "some records are invalid", problems)
    return valid


def _batch_answer(predictor: Predictor, probabilities: list[float]) -> bytes | Iterator[bytes]:
    head = orjson.dumps(
        {
            "model": predictor.name,
            "version": predictor.version.version,
            "threshold": predictor.threshold,
            "timestamp": _now(),
        }
    )
    batch = secrets.token_hex(12)
    if len(probabilities) <= STREAM_ROWS:
        items = _items(predictor, batch, probabilities, 0)
        return head[:-1] + b',"predictions":' + orjson.dumps(items) + b"}"
    return _stream(predictor, head, batch, probabilities)


def _stream(
    predictor: Predictor, head: bytes, batch: str, probabilities: list[float]
) -> Iterator[bytes]:
    yield head[:-1] + b',"predictions":['
    for start in range(0, len(probabilities), _CHUNK_ROWS):
        items = _items(predictor, batch, probabilities[start : start + _CHUNK_ROWS], start)
        chunk = orjson.dumps(items)[1:-1]
        yield chunk if start == 0 else b"," + chunk
    yield b"]}"


def _suffixes(stop: int) -> list[str]:
    """Row numbers as 8 hex digits, formatted once per process (halves building an answer)."""
    if len(_SUFFIXES) < stop:
        _SUFFIXES.extend(f"{index:08x}" for index in range(len(_SUFFIXES), stop))
    return _SUFFIXES


def _items(
    predictor: Predictor, batch: str, probabilities: list[float], start: int
) -> list[dict[str, Any]]:
    threshold = predictor.threshold
    positive_label, positive_name = predictor.positive
    negative_label, negative_name = predictor.negative
    suffixes = _suffixes(start + len(probabilities))[start : start + len(probabilities)]
    return [
        {
            "prediction_id": batch + suffix,
            "label": positive_label if p >= threshold else negative_label,
            "class_name": positive_name if p >= threshold else negative_name,
            "probability": p,
        }
        for suffix, p in zip(suffixes, probabilities, strict=True)
    ]


async def predict_entity(
    predictor: Predictor,
    lookup: EntityLookup,
    entity_id: str,
    overrides: dict[str, Any],
    batcher: MicroBatcher | None,
) -> bytes:
    """The JSON answer for an entity: its stored features, overridden, scored.

    An in-process store (SQLite) is read on the event loop; a networked one on a thread.

    Raises:
        FeatureStoreError: no such entity, or the store lacks features the version needs.
        RequestBodyError: an unknown or invalid override (422), or stored values that do not
            fit the version (409).
    """
    if lookup.is_local:
        found = lookup.features(predictor, entity_id)
    else:
        found = await run_in_threadpool(lookup.features, predictor, entity_id)
    record, row = _entity_record(predictor, found, entity_id, overrides)
    if row is None:  # a version without an encoder: the frame path on a worker thread
        probability = (await run_in_threadpool(predictor.predict_records, [record]))[0].probability
    elif batcher is not None:
        probability = await batcher.score(row)
    else:
        probability = float(predictor.score_encoded(row.reshape(1, -1))[0])
    stored = found.row
    return orjson.dumps(
        {
            "entity_id": stored.entity_id,
            "view": stored.view,
            **_decision(predictor, probability),
            "features": record,
            "overridden": sorted(overrides),
            "event_time": stored.event_time.isoformat() if stored.event_time else None,
            "materialized_at": stored.materialized_at.isoformat(),
        }
    )


def _entity_record(
    predictor: Predictor, found: EntityFeatures, entity_id: str, overrides: dict[str, Any]
) -> tuple[dict[str, Any], np.ndarray | None]:
    """The record to score and its encoded row; the lean decoder checks a plain record."""
    lean = predictor.lean
    if not overrides and lean is not None:
        values = lean.decode_one(orjson.dumps(found.record))
        if values is not None:
            encoded: np.ndarray = lean.encode([values])[0]
            return found.record, encoded
    unknown = [key for key in overrides if key not in found.record]
    if unknown:
        raise RequestBodyError(
            422,
            "invalid_input",
            f"{predictor.version.ref} takes no feature(s) {', '.join(unknown)}",
            [Problem(f"overrides.{key}", "not a feature of the model") for key in unknown],
        )
    record, problems = validate_record(predictor, {**found.record, **overrides})
    bad_overrides = [p for p in problems if p.field.split(".")[0] in overrides]
    if bad_overrides:
        prefixed = [Problem(f"overrides.{p.field}", p.problem) for p in bad_overrides]
        raise RequestBodyError(422, "invalid_input", "some overrides are invalid", prefixed)
    if problems:
        raise RequestBodyError(
            409,
            "stored_features_invalid",
            f"the stored features of entity {entity_id!r} do not fit {predictor.version.ref}; "
            "materialize them again",
            problems,
        )
    if lean is None:
        return record, None
    return record, predictor.encode_records([record])[0]
