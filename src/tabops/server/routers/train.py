"""The training endpoint: train a project as a job (seed-style ``/train``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from tabops.server.deps import JobsDep
from tabops.server.schemas import ErrorResponse, JobAcceptedResponse, TrainRequest

router = APIRouter(tags=["train"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    422: {
        "model": ErrorResponse,
        "description": "No such project or training table, or an invalid alias to promote",
    },
}


@router.post(
    "/v1/train",
    status_code=202,
    response_model=JobAcceptedResponse,
    responses=_ERRORS,
    summary="Train a project as a job",
)
async def create_training_job(body: TrainRequest, jobs: JobsDep) -> JSONResponse:
    """Queue the training of a project whose files are on the server.

    The job's result holds the metrics, every gate's outcome and, when the gates pass,
    the registered version and where each alias of the model points; ``promote`` moves
    that alias to the new version.
    """
    data = Path(body.data) if body.data else None
    job = await run_in_threadpool(jobs.submit_training, Path(body.project), data, body.promote)
    status_url = f"/v1/jobs/{job.id}"
    return JSONResponse(
        {"job_id": job.id, "status": job.status, "status_url": status_url},
        status_code=202,
        headers={"Location": status_url},
    )
