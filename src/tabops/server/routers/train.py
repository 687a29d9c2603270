"""The training endpoint: train a project as a job (seed-style ``/train``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from tabops.server.auditing import audited
from tabops.server.deps import AdminAccess, AuditDep, ContextDep, JobsDep, SettingsDep
from tabops.server.schemas import ErrorResponse, JobAcceptedResponse, TrainRequest

router = APIRouter(tags=["train"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {
        "model": ErrorResponse,
        "description": "A path outside the project roots, or inside tabops' own folder",
    },
    422: {
        "model": ErrorResponse,
        "description": "No such project or training table, or an invalid path or alias",
    },
}


@router.post(
    "/v1/train",
    status_code=202,
    response_model=JobAcceptedResponse,
    responses=_ERRORS,
    summary="Train a project as a job",
)
async def create_training_job(
    body: TrainRequest,
    caller: AdminAccess,
    jobs: JobsDep,
    settings: SettingsDep,
    audit: AuditDep,
    context: ContextDep,
) -> JSONResponse:
    """Queue the training of a project whose files are on the server, under its project roots.

    The project and its table must lie under a folder of ``TABOPS_PROJECT_ROOTS`` and
    outside the tabops home. The job's result holds the metrics, every gate's outcome and,
    when the gates pass, the registered version, where each alias of the model points and
    which aliases moved: only ``promote`` moves one, to the new version.
    """
    async with audited(audit, context, body.project, 202):
        job = await run_in_threadpool(
            jobs.submit_training,
            Path(body.project),
            Path(body.data) if body.data else None,
            body.promote,
            roots=settings.security.project_roots,
            private=[settings.home],
            owner=caller.key_id,
        )
    status_url = f"/v1/jobs/{job.id}"
    return JSONResponse(
        {"job_id": job.id, "status": job.status, "status_url": status_url},
        status_code=202,
        headers={"Location": status_url},
    )
