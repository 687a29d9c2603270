"""Running one job: claim it, do the work with a heartbeat, record the outcome once.

Execution is at least once: a job whose worker died is queued again and re-run from its
stored input. Results are written by atomic rename, so a re-run replaces the earlier
attempt's file rather than adding to it, and the job record only accepts the outcome of the
attempt that holds the claim, so no job is reported twice.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, cast

import orjson
import psutil

from tabops import atomic
from tabops.database import release_reserve, restore_reserve
from tabops.errors import GateFailedError, StorageFullError, TabopsError
from tabops.jobs.files import STORE, JobFiles
from tabops.jobs.records import Job, JobStore
from tabops.model.predictor import Predictor
from tabops.project import load_project
from tabops.registry.versions import ModelRegistry
from tabops.scoring.local import score_file
from tabops.serving.context import RequestContext
from tabops.serving.core import ServingCore

if TYPE_CHECKING:
    from tabops.training.train import TrainingResult

logger = logging.getLogger("tabops.jobs")

_T = TypeVar("_T")

_RECORD_CHUNK = 10_000
_CSV_SAMPLE_BYTES = 4 * 1024 * 1024


def process_owner() -> str:
    """This process's identity in job records: host, pid and the process's start time."""
    created = psutil.Process().create_time()
    return f"{socket.gethostname()}:{os.getpid()}:{created:.3f}"


def is_owner_gone(owner: str) -> bool:
    """Whether ``owner`` is a process of this host that no longer runs.

    Owners on other hosts cannot be checked from here: for them, only a missed heartbeat
    tells. The start time guards against a new process that reuses the pid.
    """
    host, _, rest = owner.partition(":")
    pid_text, _, created_text = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        created = psutil.Process(int(pid_text)).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return True
    return f"{created:.3f}" != created_text


class Heartbeat:
    """Reports a running job's progress every ``interval`` seconds on a thread of its own.

    A thread, not the job's own progress callbacks, keeps the lease alive: one step of
    training may take longer than the lease.
    """

    def __init__(self, store: JobStore, job: Job, owner: str, interval: float) -> None:
        self.store = store
        self.job = job
        self.owner = owner
        self.interval = interval
        self.progress = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, name=f"heartbeat-{job.id[:8]}", daemon=True
        )

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if not self.store.report(self.job.id, self.owner, self.progress):
                    logger.warning("job %s was taken over by another worker", self.job.id)
                    return
            except Exception:  # a database hiccup must not kill the job; the next beat retries
                logger.exception("could not report progress of job %s", self.job.id)


class JobRunner:
    """Runs jobs for one process: scoring through the serving core, training into its registry."""

    def __init__(
        self,
        store: JobStore,
        files: JobFiles,
        core: ServingCore,
        lease_seconds: float,
    ) -> None:
        self.store = store
        self.files = files
        self.core = core
        self.deployment = core.served_deployment()
        self.registry: ModelRegistry = self.deployment.registry
        self.lease_seconds = lease_seconds
        self.owner = process_owner()

    def run(self, job_id: str) -> Job | None:
        """Run a queued job to its end; None when it is finished or held elsewhere."""
        # Top up the reserve an earlier full disk used: room to record this job's outcome.
        restore_reserve(self.store.engine)
        job = self._recorded(partial(self.store.claim, job_id, self.owner))
        if job is None:
            return None
        logger.info("running %s job %s (attempt %d)", job.kind, job.id, job.attempts)
        with Heartbeat(self.store, job, self.owner, self.lease_seconds / 4) as beat:
            result: dict[str, Any] | None = None
            error: str | None = None
            try:
                result = self._execute(job, beat)
            except GateFailedError as exc:
                error = exc.message
                if exc.result is not None:  # only training raises it, with what was trained
                    result = summarize_training(cast("TrainingResult", exc.result))
            except TabopsError as exc:
                error = describe_error(exc)
            except Exception as exc:
                logger.exception("job %s failed", job.id)
                error = (
                    f"the job failed unexpectedly ({type(exc).__name__}: {exc}); "
                    "the worker's log has the details"
                )
        finish = partial(self.store.finish, job.id, self.owner, result=result, error=error)
        if not self._recorded(finish):
            logger.warning("job %s was taken over; this attempt's outcome is dropped", job.id)
        else:
            logger.info("job %s %s", job.id, "failed: " + error if error else "succeeded")
        return self.store.get(job.id)

    def _recorded(self, write: Callable[[], _T]) -> _T:
        """What ``write`` returns; on a full disk, retried on the database's reserve.

        A claim or an outcome left unrecorded would leave the job queued or running until
        the disk has room again, so these two writes may spend the reserve, chunk by chunk.
        """
        while True:
            try:
                return write()
            except StorageFullError:
                if not release_reserve(self.store.engine):
                    raise

    def _execute(self, job: Job, beat: Heartbeat) -> dict[str, Any]:
        if job.kind == "train":
            return self._train(job, beat)
        if job.model is None or job.version is None or job.input_format is None:
            raise TabopsError("the job record names no model version or input")
        # Authorized when it was submitted; the version was fixed then too.
        predictor = self.deployment.get(job.model, job.version)
        context = RequestContext("job", request_id=job.id)
        # This attempt holds the claim, so a temp file here is an earlier attempt's, cut off.
        self.files.remove_temp_files(job.id)
        if job.input_format == "json":
            return self._score_records(job, predictor, context, beat)
        return self._score_file(job, predictor, context, beat)

    def _score_records(
        self, job: Job, predictor: Predictor, context: RequestContext, beat: Heartbeat
    ) -> dict[str, Any]:
        assert job.input_format is not None
        records = orjson.loads(self.files.input_path(job.id, job.input_format).read_bytes())
        document: dict[str, Any] = {}
        items: list[dict[str, Any]] = []
        positives = 0
        decisions = None
        for start in range(0, len(records), _RECORD_CHUNK):
            chunk = records[start : start + _RECORD_CHUNK]
            decisions = self.core.decide_records_now(context, predictor, chunk, decisions)
            document = document or decisions.head()
            items.extend(decisions.items())
            positives += decisions.positives
            beat.progress = len(items) / len(records)
        document["predictions"] = items
        path = self.files.result_path(job.id, job.input_format)
        self.files.write_bytes(path, orjson.dumps(document))
        return {"rows": len(items), "positives": positives}

    def _score_file(
        self, job: Job, predictor: Predictor, context: RequestContext, beat: Heartbeat
    ) -> dict[str, Any]:
        assert job.input_format is not None
        source = self.files.input_path(job.id, job.input_format)
        total = job.params.get("rows") or estimate_csv_rows(source)

        def advance(rows: int) -> None:
            beat.progress = min(rows / total, 0.99) if total else 0.0

        with atomic.reporting_full_disk(STORE):
            result = score_file(
                predictor,
                source,
                self.files.result_path(job.id, job.input_format),
                core=self.core,
                context=context,
                progress=advance,
            )
        return {
            "rows": result.rows,
            "positives": result.positives,
            "invalid_rows": result.invalid_rows,
            "problems": [{"field": p.field, "problem": p.problem} for p in result.problems],
        }

    def _train(self, job: Job, beat: Heartbeat) -> dict[str, Any]:
        # Training (its card brings matplotlib) is imported by the jobs that train, not by
        # every server and worker at start-up.
        from tabops.training.register import train_project
        from tabops.training.train import count_training_steps

        # The paths were confined to the project roots when the job was submitted.
        project, folder = load_project(Path(job.params["project"]))
        data = job.params.get("data")
        total = count_training_steps(project)
        done = 0.0

        def advance(_step: str, step_done: float) -> None:
            nonlocal done
            done += step_done
            beat.progress = min(done / total, 0.99)

        outcome = train_project(
            project,
            folder,
            self.registry,
            Path(data) if data else None,
            advance,
            promote=job.params.get("promote"),
            # Over the network only an explicit promote puts a version in service.
            first_alias=None,
        )
        summary = summarize_training(outcome.result)
        summary.update(
            model=outcome.version.name,
            version=outcome.version.version,
            promoted=outcome.promoted,
            moved=outcome.moved,
            aliases={position.alias: position.version for position in outcome.aliases},
            alias_notes=outcome.describe_aliases(),
        )
        return summary


def summarize_training(result: TrainingResult) -> dict[str, Any]:
    """What a training job reports: the winner, its test metrics and every gate's outcome."""
    return {
        "candidate": result.candidate.name,
        "threshold": result.threshold.threshold,
        "metrics": {k: v for k, v in result.test.metrics.items() if math.isfinite(v)},
        "gates": [gate.model_dump() for gate in result.gates],
        "gates_passed": not result.failed_gates,
        "rows": result.rows,
        "training_seconds": result.training_seconds,
    }


def describe_error(exc: TabopsError) -> str:
    """An error's message followed by its first few problems, as one sentence."""
    if not exc.problems:
        return exc.message
    listed = "; ".join(f"{p.field}: {p.problem}" for p in exc.problems[:5])
    more = f" (and {len(exc.problems) - 5} more)" if len(exc.problems) > 5 else ""
    return f"{exc.message}: {listed}{more}"


def estimate_csv_rows(path: Path) -> int | None:
    """Rows of a CSV estimated from its size and the line length of its first megabytes.

    Only for progress: a quoted newline inside a field makes it approximate.
    """
    if path.suffix != ".csv":
        return None
    size = path.stat().st_size
    with path.open("rb") as handle:
        sample = handle.read(_CSV_SAMPLE_BYTES)
    lines = sample.count(b"\n")
    if not lines:
        return None
    return max(int(lines * size / len(sample)) - 1, 1)
