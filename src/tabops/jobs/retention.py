"""Removing jobs and what they leave on disk: on request, and past their retention.

A job is removed record first, files second: a crash in between leaves a folder no record
claims, which a later sweep removes once it has been untouched for as long as the retention
period (a submission writes its files before its record, so a young unclaimed folder may be
one in progress). Sweeps are idempotent, so several processes may run them at once.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from tabops.jobs.files import JobFiles
from tabops.jobs.records import FINISHED, JobStore

logger = logging.getLogger("tabops.jobs")


@dataclass
class PruneResult:
    """What a sweep removed."""

    jobs: int = 0
    """Jobs removed, record and files."""
    folders: int = 0
    """Folders no job record claimed."""
    temp_files: int = 0
    """Temp files left in finished jobs' folders by interrupted writes."""
    bytes: int = 0
    """Bytes freed in all."""


def remove_job(
    store: JobStore, files: JobFiles, job_id: str, statuses: Collection[str]
) -> int | None:
    """Delete a job, record then files, if its status is one of ``statuses``.

    Returns:
        The bytes freed, or None when the job was gone or in another status.
    """
    if not store.delete(job_id, statuses):
        return None
    return files.remove(job_id)


def sweep_jobs(store: JobStore, files: JobFiles, before: datetime | None) -> PruneResult:
    """Remove finished jobs that ended before ``before``, and what jobs left behind.

    With ``before`` None, no job or folder is removed, only temp files of finished jobs.
    """
    result = PruneResult()
    if before is not None:
        for job_id in store.finished_before(before):
            freed = remove_job(store, files, job_id, FINISHED)
            if freed is not None:
                result.jobs += 1
                result.bytes += freed
    on_disk = files.job_ids()
    statuses = store.statuses(on_disk)
    for job_id in on_disk:
        status = statuses.get(job_id)
        if status is None and before is not None:
            changed = files.last_change(job_id)
            if changed is not None and changed < before:
                result.bytes += files.remove(job_id)
                result.folders += 1
        # A queued or running job's temp files are its claim holder's to clear.
        elif status in FINISHED and files.has_temp_files(job_id):
            removed, freed = files.remove_temp_files(job_id)
            result.temp_files += removed
            result.bytes += freed
    if result.jobs or result.folders or result.temp_files:
        logger.info(
            "removed %d expired job(s), %d unclaimed folder(s), %d temp file(s): %d bytes",
            result.jobs,
            result.folders,
            result.temp_files,
            result.bytes,
        )
    return result
