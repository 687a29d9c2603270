"""``tabops worker`` and the ``tabops jobs`` group: run queued jobs, list, show and prune them."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Annotated

import typer

from tabops.cli.output import console, fail, open_registry, print_whole, reported_errors

if TYPE_CHECKING:
    from tabops.jobs import JobService
    from tabops.serving.hooks import PredictionSink

app = typer.Typer(help="Follow asynchronous jobs.", no_args_is_help=True)


def _service(sink: PredictionSink | None = None) -> JobService:
    from tabops.config import get_settings
    from tabops.jobs import JobService
    from tabops.serving.core import ServingCore
    from tabops.serving.hooks import Hooks

    settings = get_settings()
    core = ServingCore.from_settings(settings, open_registry(), Hooks(sink=sink))
    return JobService.from_settings(settings, core)


def worker(
    threads: Annotated[int, typer.Option(min=1, help="Jobs run at once by this process.")] = 2,
    log_level: Annotated[str, typer.Option(help="Log level.")] = "info",
) -> None:
    """Run queued jobs until interrupted (Ctrl-C finishes running jobs first).

    Reads the queue of TABOPS_QUEUE_URL (Redis), or the SQLite queue under TABOPS_HOME.
    """
    from tabops.config import get_settings
    from tabops.monitoring.log import PredictionLog
    from tabops.monitoring.watch import Watch

    level = getattr(logging, log_level.upper(), logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s:     %(name)s: %(message)s")
    settings = get_settings()
    log = PredictionLog.from_settings(settings) if settings.monitoring.enabled else None
    with reported_errors():
        service = _service(log)
        watch = Watch.from_settings(settings, open_registry(), service.store.engine)
        interval = settings.monitoring.check_interval_seconds
        service.queue.every(interval, watch.check_all, "tabops.check_alerts")
        requeued = service.queue.start(workers=0)  # recovers and prunes; no threads here
    where = settings.queue.url or f"{settings.home / 'queue.db'}"
    console.print(f"tabops worker: {threads} thread(s) on {where}; {requeued} job(s) queued")
    if log is not None:
        log.start()
    try:
        service.queue.consumer(threads, embedded=False).run()
    finally:
        if log is not None:  # the predictions of the jobs that ran last
            log.close()


@app.command("list")
def list_jobs(
    status: Annotated[str | None, typer.Option(help="Only jobs of this status.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many, newest first.")] = 20,
) -> None:
    """The most recent jobs."""
    from rich.table import Table

    with reported_errors():
        jobs = _service().recent(status, limit)
    table = Table()
    for heading in ("id", "kind", "model", "status", "progress", "created", "error"):
        table.add_column(heading)
    for job in jobs:
        model = f"{job.model}:{job.version}" if job.version is not None else job.model or "-"
        table.add_row(
            job.id,
            job.kind,
            model,
            job.status,
            f"{job.progress:.0%}",
            job.created.strftime("%Y-%m-%d %H:%M:%S"),
            job.error or "",
        )
    print_whole(table)


@app.command("show")
def show_job(job_id: Annotated[str, typer.Argument(help="The job's id.")]) -> None:
    """One job's record, result summary included."""
    with reported_errors():
        job = _service().get(job_id)
    console.print_json(data=job.describe(), default=str)


@app.command("prune")
def prune_jobs(
    older_than: Annotated[
        float | None,
        typer.Option(
            min=0,
            metavar="DAYS",
            help="Remove finished jobs that ended this many days ago or earlier "
            "[default: TABOPS_QUEUE__JOB_RETENTION_DAYS].",
        ),
    ] = None,
) -> None:
    """Remove old finished jobs with their files, and files no job claims.

    Queued and running jobs are never removed. Servers and workers do the same at start-up
    and every hour when a retention period is set.
    """
    from rich.filesize import decimal

    from tabops.config import get_settings

    if older_than is None and get_settings().queue.job_retention_days is None:
        fail("job retention is off in the settings: pass --older-than DAYS")
    with reported_errors():
        service = _service()
        try:
            result = service.prune(older_than)
        finally:
            service.close()
    console.print(
        f"removed {result.jobs} job(s), {result.folders} folder(s) no job claimed and "
        f"{result.temp_files} temp file(s): {decimal(result.bytes)} freed"
    )
