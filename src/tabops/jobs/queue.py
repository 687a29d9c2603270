"""The queue that hands job ids to workers: Huey on SQLite (default) or Redis by URL.

A message is only a job id; the job record decides whether it runs. Huey drops a message
whose worker is killed mid-task, so durability comes from the records instead: at start-up,
``recover`` re-queues every queued job (its message may be the one lost) and every running
job whose worker is gone; once a minute, consumers re-queue running jobs whose worker
stopped reporting. A message that turns out to be a duplicate finds its job claimed or
finished and does nothing.

Retention runs the same way: at start-up and once an hour on every consumer, finished jobs
past ``job_retention_days`` are removed (``retention.sweep_jobs``). Each sweep is
idempotent, so it needs no single scheduler among several server or worker processes, on
SQLite or on Redis.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from huey import Huey, RedisHuey, SqliteHuey, crontab
from huey.consumer import Consumer

from tabops.config import Settings
from tabops.database import sqlite_error
from tabops.jobs.records import JobStore, now
from tabops.jobs.retention import PruneResult, sweep_jobs
from tabops.jobs.run import JobRunner, is_owner_gone

logger = logging.getLogger("tabops.jobs")

QUEUE_NAME = "tabops-jobs"
_POLL_MAX_SECONDS = 0.5  # longest idle wait of a SQLite-queue worker before it looks again
_SQLITE_QUEUE_WAIT_SECONDS = 5.0
# A tick a little early still counts: ticks drift by a second or two.
_TICK_SLACK_SECONDS = 5.0  # how long SqliteHuey waits for a lock (its default)


class EmbeddedConsumer(Consumer):  # type: ignore[misc]  # huey ships no type hints
    """A Huey consumer that leaves signal handling to the process hosting it (uvicorn)."""

    def _set_signal_handlers(self) -> None:
        """Keep the host's handlers: Ctrl-C must stop the server, not only the workers."""


def build_huey(settings: Settings) -> Huey:
    """The Huey instance for ``settings``: Redis when ``queue_url`` says so, else SQLite."""
    url = settings.queue.url
    if url:
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"TABOPS_QUEUE_URL must be a redis:// URL, not {url!r}")
        return RedisHuey(QUEUE_NAME, url=url, results=False)
    settings.home.mkdir(parents=True, exist_ok=True)
    return SqliteHuey(QUEUE_NAME, filename=str(settings.home / "queue.db"), results=False)


class JobQueue:
    """Job ids in, ``JobRunner.run`` out, on whichever consumers read the queue."""

    def __init__(
        self,
        huey: Huey,
        store: JobStore,
        runner: JobRunner,
        retention_days: float | None = None,
    ) -> None:
        self.huey = huey
        self.store = store
        self.runner = runner
        self.retention = timedelta(days=retention_days) if retention_days is not None else None
        self._consumer: EmbeddedConsumer | None = None
        # Tasks are named explicitly: a worker on another host finds them by name.
        self._run = huey.task(name="tabops.run_job")(runner.run)
        huey.periodic_task(crontab(minute="*"), name="tabops.recover_jobs")(self.release_stale)
        huey.periodic_task(crontab(minute="0"), name="tabops.prune_jobs")(self.prune)

    def every(self, seconds: float, work: Callable[[], object], name: str) -> None:
        """Run ``work`` on the consumers about every ``seconds`` (a minute at the least).

        Huey's schedule ticks once a minute; a tick runs ``work`` when ``seconds`` have passed
        since this process last ran it. Every consumer process ticks, so ``work`` must be
        safe to run in several at once. Register before ``start``.
        """
        last_run = [float("-inf")]

        def tick() -> None:
            started = time.monotonic()
            if started - last_run[0] < seconds - _TICK_SLACK_SECONDS:
                return
            last_run[0] = started
            try:
                work()
            except Exception:  # one failed round must not stop the schedule
                logger.exception("periodic task %s failed; the next tick tries again", name)

        self.huey.periodic_task(crontab(minute="*"), name=name)(tick)

    def enqueue(self, job_id: str) -> None:
        """Hand a job to the workers.

        Raises:
            StorageFullError: the disk holding the SQLite queue is full.
            DatabaseBusyError: the SQLite queue stayed locked by another writer.
        """
        try:
            self._run(job_id)
        except sqlite3.OperationalError as exc:
            error = sqlite_error(exc, "job queue", _SQLITE_QUEUE_WAIT_SECONDS)
            if error is None:
                raise
            raise error from exc

    def recover(self) -> int:
        """Queue again every queued job and every job whose worker died; returns how many."""
        self._release_dead()
        queued = self.store.queued_ids()
        for job_id in queued:
            self.enqueue(job_id)
        return len(queued)

    def release_stale(self) -> None:
        """Queue again the running jobs whose worker is gone (the periodic sweep)."""
        for job_id in self._release_dead():
            self.enqueue(job_id)

    def prune(self, retention: timedelta | None = None) -> PruneResult:
        """Remove finished jobs older than ``retention`` (default: the configured one).

        Also removes folders no job claims once as old, and temp files in finished jobs'
        folders; with no retention at all, only those temp files.
        """
        retention = retention if retention is not None else self.retention
        return sweep_jobs(
            self.store, self.runner.files, now() - retention if retention is not None else None
        )

    def _release_dead(self) -> list[str]:
        stale = self.store.stale_before(self.runner.lease_seconds)
        released = [
            job_id
            for job_id, worker, heartbeat in self.store.running()
            if (heartbeat < stale or is_owner_gone(worker)) and self.store.release(job_id, worker)
        ]
        if released:
            logger.warning("re-queued %d job(s) whose worker stopped", len(released))
        return released

    def consumer(self, workers: int, *, embedded: bool) -> Consumer:
        """A consumer of ``workers`` threads; ``embedded`` leaves signals to the host."""
        options: dict[str, Any] = {
            "workers": workers,
            "worker_type": "thread",
            "periodic": True,
            "max_delay": _POLL_MAX_SECONDS,
            "check_worker_health": True,
        }
        if embedded:
            return EmbeddedConsumer(self.huey, **options)
        return Consumer(self.huey, **options)

    def start(self, workers: int) -> int:
        """Recover unfinished jobs, prune expired ones, then run ``workers`` consumer threads.

        Returns:
            How many jobs were queued again.
        """
        requeued = self.recover()
        try:
            self.prune()
        except Exception:  # housekeeping: a failed sweep must not keep the server from serving
            logger.exception("could not remove expired jobs; the hourly sweep will try again")
        if workers > 0:
            self._consumer = self.consumer(workers, embedded=True)
            self._consumer.start()
        return requeued

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the consumer threads, waiting up to ``timeout`` for running jobs.

        A job still running afterwards is left to recovery: its record says which process
        held it, and the next start re-queues it.
        """
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            consumer.shutdown_timeout = timeout
            consumer.stop(graceful=True)
