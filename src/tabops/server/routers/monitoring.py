"""Monitoring endpoints: a model's traffic, drift, performance and alerts; checks on demand."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool

from tabops.errors import InvalidRequestError, ModelNotFoundError, Problem
from tabops.monitoring.alert_store import alert_document
from tabops.monitoring.windows import Window, parse_moment
from tabops.server.auditing import audited
from tabops.server.deps import (
    AdminAccess,
    AuditDep,
    ContextDep,
    ReadAccess,
    RegistryDep,
    WatchDep,
)
from tabops.server.schemas import ErrorResponse

router = APIRouter(prefix="/v1/models", tags=["monitoring"])
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorResponse}}


def _known(registry: Any, name: str) -> None:
    if not registry.list_versions(name):
        raise ModelNotFoundError(
            f"model {name!r} not found", [Problem("name", "no model of that name is registered")]
        )


@router.get("/{name}/monitoring", responses=_NOT_FOUND, summary="Traffic, drift and performance")
async def get_monitoring(
    name: str,
    _caller: ReadAccess,
    registry: RegistryDep,
    watch: WatchDep,
    window: Annotated[
        str,
        Query(
            max_length=16,
            description="A time ('1h', '1d', '7d') or a count of the latest predictions "
            "('5000'); with 'since', the length of each point of the series.",
        ),
    ] = "1d",
    since: Annotated[
        str | None,
        Query(max_length=40, description="Start of a series: '7d' back from now, or an ISO date."),
    ] = None,
    until: Annotated[str | None, Query(max_length=40, description="End (default: now).")] = None,
    version: Annotated[int | None, Query(ge=1, description="One version only.")] = None,
) -> dict[str, Any]:
    """What the prediction log says about a model, version by version.

    Traffic; drift of every feature and of the score against the version's reference;
    performance from the labels received, beside the training test metrics and their
    intervals; label-free estimates (marked ``estimate``); the state of every alert rule.

    Predictions are readable after the serving process's next log flush (about a second).
    """
    _known(registry, name)
    now = datetime.now(UTC)
    parsed = Window.parse(window)
    end = parse_moment(until, "until", now) if until else now
    start = parse_moment(since, "since", now) if since else None
    if start is not None and start >= end:
        raise InvalidRequestError(
            "since must be before until", [Problem("since", "not before until")]
        )
    versions = [version] if version is not None else None
    answer = await run_in_threadpool(watch.monitor.summary, name, parsed, start, end, versions)
    states = await run_in_threadpool(watch.alerts.states, name)
    answer["alerts"] = [alert_document(state) for state in states]
    return answer


@router.post("/{name}/monitoring/check", responses=_NOT_FOUND, summary="Check the alert rules now")
async def check_alerts(
    name: str,
    _caller: AdminAccess,
    context: ContextDep,
    audit: AuditDep,
    registry: RegistryDep,
    watch: WatchDep,
) -> dict[str, Any]:
    """Check the model's alert rules now (the job workers also check them on a schedule).

    Returns the alerts that fired or resolved; each is delivered once, however many
    processes check at the same time.
    """
    _known(registry, name)
    async with audited(audit, context, name):
        events = await run_in_threadpool(watch.checker.check, name)
    return {"model": name, "events": [event.payload() for event in events]}
