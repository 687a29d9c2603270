"""MLflow's scoring protocol: ``/invocations`` bodies in, ``{"predictions": [...]}`` out.

A JSON body holds its rows under exactly one of ``dataframe_split``, ``dataframe_records``,
``instances`` or ``inputs``, with optional ``params`` beside it; a ``text/csv`` body is a
table whose header names the features. JSON rows become records checked one by one, as the
v1 batch route checks them, so both answer the same (``mlflow_json``); a CSV body is read by
pandas and checked as a file is, cell by cell, unless it is a few plain rows (``mlflow_csv``).
Nothing is scored until every row is valid: a bad row would otherwise leave logged
predictions that no client ever received.

What a prediction is depends on the predict method (``params.predict_method`` or the
``predict_method`` query parameter): ``predict`` (the default, as MLflow's scikit-learn flavor
answers) gives each row's label, ``predict_proba`` the positive class's probability, and
``decision`` the v1 decision per row (id, label, class name, probability) with the model,
version, threshold and time beside the predictions.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pandas as pd

from tabops.errors import (
    InvalidInputError,
    Problem,
    UnsupportedMediaError,
)
from tabops.model.decoder import LeanDecoder
from tabops.model.predictor import Predictor
from tabops.server.codecs.mlflow_csv import read_csv, typed_rows
from tabops.server.codecs.mlflow_json import PREDICT_METHODS, decode_json, invalid_rows_error
from tabops.serving.context import RequestContext
from tabops.serving.core import THREAD_ROWS, ServingCore
from tabops.serving.decisions import Decisions
from tabops.serving.hooks import FeatureRows

JSON_MEDIA = "application/json"
CSV_MEDIA = "text/csv"
DEFAULT_METHOD = "predict"
_THREAD_BYTES = 256 * 1024  # CSV bodies above this are parsed on a worker thread


def media_of(content_type: str | None) -> str:
    """``application/json`` or ``text/csv``, as ``content_type`` names it.

    Raises:
        UnsupportedMediaError: any other type, a charset other than UTF-8, or an unknown
            parameter (MLflow 1.x's ``format=pandas-split``).
    """
    accepted = f"send {JSON_MEDIA} or {CSV_MEDIA}"
    media, *parameters = (part.strip() for part in (content_type or "").split(";"))
    media = media.lower()
    if media not in (JSON_MEDIA, CSV_MEDIA):
        shown = repr(content_type) if content_type else "none"
        raise UnsupportedMediaError(
            f"content type {shown} is not accepted; {accepted}",
            [Problem("content-type", f"{accepted}, not {shown}")],
        )
    for parameter in filter(None, parameters):
        key, _, value = parameter.partition("=")
        key, value = key.strip().lower(), value.strip().strip('"').lower()
        if key != "charset":
            raise UnsupportedMediaError(
                f"content type parameter {key!r} is not accepted; {accepted}",
                [Problem("content-type", f"unknown parameter {key!r}")],
            )
        if value not in ("utf-8", "utf8"):
            raise UnsupportedMediaError(
                "only UTF-8 bodies are accepted", [Problem("content-type", "charset must be utf-8")]
            )
    return media


def choose_method(from_params: str | None, from_query: str | None) -> str:
    """The predict method a request asks for, ``predict`` when it asks for none.

    Raises:
        InvalidInputError: an unknown method, or two different ones.
    """
    for where, method in (("params.predict_method", from_params), ("predict_method", from_query)):
        if method is not None and method not in PREDICT_METHODS:
            raise InvalidInputError(
                f"unknown predict method {method!r}",
                [Problem(where, f"one of {', '.join(PREDICT_METHODS)}")],
            )
    if from_params is not None and from_query is not None and from_params != from_query:
        raise InvalidInputError(
            "the query and the params ask for different predict methods",
            [
                Problem(
                    "params.predict_method", f"{from_params!r} but the query says {from_query!r}"
                )
            ],
        )
    return from_params or from_query or DEFAULT_METHOD


async def invoke(
    core: ServingCore,
    context: RequestContext,
    predictor: Predictor,
    body: bytes,
    *,
    content_type: str | None,
    predict_method: str | None,
    max_rows: int,
) -> bytes:
    """The answer to an invocation; ``predict_method`` is the query's.

    Raises:
        UnsupportedMediaError, EmptyBodyError, MalformedBodyError, InvalidRequestError,
        InvalidInputError, BatchTooLargeError.
    """
    from_query = predict_method
    if media_of(content_type) == CSV_MEDIA:
        method = choose_method(None, from_query)
        lean = predictor.lean
        rows = typed_rows(predictor.spec.features, body) if lean is not None else None
        if rows is not None and lean is not None and len(rows) <= max_rows:
            names = predictor.feature_names
            features = FeatureRows(names, rows=rows) if core.keeps_inputs else None
            decisions = await core.decide_array(context, predictor, lean.encode(rows), features)
        else:
            if len(body) > _THREAD_BYTES:
                frame = await asyncio.to_thread(read_csv, body, max_rows)
            else:
                frame = read_csv(body, max_rows)
            decisions = await _decide_frame(core, context, predictor, frame)
    else:
        lean = predictor.lean
        typed = _typed_records(lean, body, max_rows) if lean is not None else None
        if typed is not None and lean is not None:
            rows, from_params = typed
            method = choose_method(from_params, from_query)
            names = predictor.feature_names
            features = FeatureRows(names, rows=rows) if core.keeps_inputs else None
            decisions = await core.decide_array(context, predictor, lean.encode(rows), features)
        else:
            records, from_params = decode_json(
                predictor.validator, predictor.feature_names, body, max_rows
            )
            method = choose_method(from_params, from_query)
            decisions = await core.decide_records(context, predictor, records)
    return encode_predictions(decisions, method)


_TYPED_KEYS = ("dataframe_records", "instances")
"""The formats whose rows are records, read by the version's typed decoder when it can."""
_SPLIT = "dataframe_split"  # read by it too when its columns are the features, in any order


def _typed_records(
    lean: LeanDecoder, body: bytes, max_rows: int
) -> tuple[list[tuple[Any, ...]], str | None] | None:
    """Records read and type-checked in one pass by the version's typed decoder.

    As ``/v1`` batches are read; with the predict method their params name. None when the
    body needs the full path (another format, rows as lists, any doubt): it names problems.
    """
    for key in (*_TYPED_KEYS, _SPLIT):
        found = lean.decode_split(body) if key == _SPLIT else lean.decode_listed(body, key)
        if found is None:
            continue
        rows, params = found
        method = params.get("predict_method") if params else None
        if not rows or len(rows) > max_rows or (params and set(params) != {"predict_method"}):
            return None  # the full path says what is wrong
        if method is not None and not isinstance(method, str):
            return None
        return rows, method
    return None


def encode_predictions(decisions: Decisions, method: str) -> bytes:
    """``{"predictions": [...]}`` in row order, as ``method`` defines a prediction."""
    if method == "predict_proba":
        return orjson.dumps({"predictions": decisions.probabilities})
    if method == "decision":
        return orjson.dumps({**decisions.head(), "predictions": decisions.items()})
    return orjson.dumps({"predictions": decisions.label_array().tolist()})


async def _decide_frame(
    core: ServingCore, context: RequestContext, predictor: Predictor, frame: pd.DataFrame
) -> Decisions:
    """A CSV table's rows decided once all are valid (named ``row N.column`` otherwise)."""
    renamed = set(predictor.renames)
    unknown = [
        str(name)
        for name in frame.columns
        if name not in predictor.feature_names and name not in renamed
    ]
    if unknown:
        raise InvalidInputError(
            f"unknown column(s): {', '.join(unknown)}",
            [Problem(name, "not a feature of the model") for name in unknown],
        )
    _invalid, problems = predictor.invalid_rows(predictor.as_features(frame))
    if problems:
        raise invalid_rows_error([problem.as_problem() for problem in problems])
    if len(frame) > THREAD_ROWS:
        found = await asyncio.to_thread(core.decide_frame, context, predictor, frame)
    else:
        found = core.decide_frame(context, predictor, frame)
    return found.decisions
