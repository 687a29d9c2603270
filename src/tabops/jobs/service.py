"""Submitting jobs and reading them back: what the API and the CLI call."""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

import orjson
from sqlalchemy import Engine

from tabops.config import Settings
from tabops.database import create_database_engine
from tabops.errors import (
    DataError,
    InvalidRequestError,
    JobError,
    JobNotFinishedError,
    Problem,
    RegistryError,
)
from tabops.jobs.files import JobFiles
from tabops.jobs.queue import JobQueue, build_huey
from tabops.jobs.records import Job, JobStore
from tabops.jobs.run import JobRunner
from tabops.model.predictor import Predictor
from tabops.project import load_project, resolve_data_path
from tabops.registry.versions import check_alias
from tabops.scoring.local import check_file, count_rows
from tabops.serving.core import ServingCore


class JobService:
    """Jobs of one tabops home: records in the database, files on disk, ids on the queue."""

    def __init__(self, store: JobStore, files: JobFiles, queue: JobQueue, max_upload_bytes: int):
        self.store = store
        self.files = files
        self.queue = queue
        self.max_upload_bytes = max_upload_bytes

    @classmethod
    def from_settings(
        cls, settings: Settings, core: ServingCore, engine: Engine | None = None
    ) -> JobService:
        """The jobs of ``settings``' database (or ``engine``) and queue.

        Scoring jobs run through ``core`` (its deployment's models, its hooks).
        """
        store = JobStore(engine or create_database_engine(settings.metadata_url))
        files = JobFiles(settings.jobs_path)
        runner = JobRunner(store, files, core, settings.queue.job_lease_seconds)
        queue = JobQueue(build_huey(settings), store, runner)
        return cls(store, files, queue, settings.queue.max_upload_bytes)

    def submit_records(self, predictor: Predictor, records: list[dict[str, Any]]) -> Job:
        """Queue the scoring of validated records by one version."""
        job = Job.new(
            "score",
            model=predictor.name,
            version=predictor.version.version,
            input_format="json",
            params={"rows": len(records)},
        )
        self.files.write_bytes(self.files.input_path(job.id, "json"), orjson.dumps(records))
        return self._queue(job)

    def submit_file(self, predictor: Predictor, source: IO[bytes], file_format: str) -> Job:
        """Queue the scoring of an uploaded CSV or Parquet file by one version.

        The upload is stored first, then checked (readable, every feature column present),
        so a file that cannot be scored is refused now rather than failing later.

        Raises:
            DataError: the upload is empty, too large or unreadable.
            InvalidInputError: a feature column is missing.
        """
        job = Job.new(
            "score",
            model=predictor.name,
            version=predictor.version.version,
            input_format=file_format,
        )
        path = self.files.input_path(job.id, file_format)
        try:
            self.files.copy_upload(path, source, self.max_upload_bytes)
            check_file(predictor, path)
            job.params["rows"] = count_rows(path)
        except BaseException:
            self.files.remove(job.id)
            raise
        return self._queue(job)

    def submit_training(
        self, project_path: Path, data: Path | None = None, promote: str | None = None
    ) -> Job:
        """Queue the training of a project (paths as the server sees them).

        ``promote`` names an alias to point at the new version when every gate passes.

        Raises:
            InvalidRequestError: ``promote`` is not a valid alias name.
            ProjectError: the project file is missing or invalid.
            DataError: the training table does not exist.
        """
        if promote is not None:
            try:
                check_alias(promote)
            except RegistryError as exc:
                problems = [Problem("promote", exc.message)]
                raise InvalidRequestError("the alias to promote is invalid", problems) from exc
        if not project_path.is_absolute():
            project_path = project_path.resolve()
        project, folder = load_project(project_path)
        source = resolve_data_path(project, folder, data)
        if not source.is_file():
            raise DataError(
                f"no training table at {source}", [Problem("data", "file does not exist")]
            )
        params = {
            "project": str(project_path),
            "data": str(source.resolve()) if data else None,
            "promote": promote,
        }
        return self._queue(Job.new("train", model=project.name, params=params))

    def get(self, job_id: str) -> Job:
        """The job with this id (raises ``JobNotFoundError``)."""
        return self.store.get(job_id)

    def recent(self, status: str | None = None, limit: int = 50) -> list[Job]:
        """The most recent jobs, newest first."""
        return self.store.recent(status, limit)

    def result_file(self, job: Job) -> Path:
        """The scored file (or JSON document) of a succeeded scoring job.

        Raises:
            JobNotFinishedError: the job has not succeeded.
            JobError: the job trains a model, so its result is in the job record.
        """
        if job.kind != "score" or job.input_format is None:
            raise JobError(f"job {job.id} trains a model; its result is in the job record")
        if job.status == "failed":
            raise JobNotFinishedError(f"job {job.id} failed, so it has no result: {job.error}")
        if job.status != "succeeded":
            raise JobNotFinishedError(
                f"job {job.id} is {job.status}; its result is ready when it has succeeded"
            )
        return self.files.result_path(job.id, job.input_format)

    def errors_file(self, job: Job) -> Path | None:
        """The side file of rows that failed validation, when the job has one."""
        if job.status != "succeeded" or job.input_format in (None, "json"):
            return None
        assert job.input_format is not None
        path = self.files.errors_path(job.id, job.input_format)
        return path if path.is_file() else None

    def predictions(self, job: Job) -> list[dict[str, Any]] | None:
        """The predictions of a succeeded records job, in the order of its records."""
        if job.status != "succeeded" or job.input_format != "json":
            return None
        document = orjson.loads(self.files.result_path(job.id, "json").read_bytes())
        predictions: list[dict[str, Any]] = document["predictions"]
        return predictions

    def close(self) -> None:
        """Stop this process's job threads and close its database connections."""
        self.queue.stop()
        self.store.engine.dispose()

    def _queue(self, job: Job) -> Job:
        # Record first, then message: a crash in between leaves a queued record, which
        # the next start-up re-queues; the reverse order could run a job with no record.
        self.store.add(job)
        self.queue.enqueue(job.id)
        return job
