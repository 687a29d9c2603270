"""Logged predictions, looked up by id."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from tabops.errors import InvalidRequestError, PredictionNotFoundError, Problem
from tabops.monitoring.layout import is_prediction_id
from tabops.server.deps import LogReaderDep, ReadAccess
from tabops.server.schemas import ErrorResponse

router = APIRouter(prefix="/v1/predictions", tags=["predictions"])


@router.get(
    "/{prediction_id}",
    responses={404: {"model": ErrorResponse, "description": "No logged prediction has that id"}},
)
async def get_prediction(
    prediction_id: str, caller: ReadAccess, reader: LogReaderDep
) -> dict[str, Any]:
    """A logged prediction: its request, route, caller's key, decision, latency and features.

    A prediction is logged when the server next writes its log, ``monitoring.flush_seconds``
    (1 s by default) after it was answered at most; before that, and for a model the
    caller's key may not use, the answer is 404.
    """
    if not is_prediction_id(prediction_id):
        raise InvalidRequestError(
            "a prediction id is 32 hexadecimal digits",
            [Problem("prediction_id", "must be 32 lower-case hexadecimal digits")],
        )
    found = await run_in_threadpool(reader.find, prediction_id)
    if found is None or not caller.may_use(found["model"]):
        raise PredictionNotFoundError(
            f"no logged prediction has id {prediction_id}",
            [Problem("prediction_id", "not in the prediction log (yet)")],
        )
    return found
