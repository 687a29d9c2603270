"""Recording an admin action in the audit log, whichever way it ends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi.concurrency import run_in_threadpool

from tabops.errors import TabopsError
from tabops.security.access import audit_entry
from tabops.security.audit import AuditLog
from tabops.server.errors import status_of
from tabops.serving.context import RequestContext


@asynccontextmanager
async def audited(
    audit: AuditLog, context: RequestContext, target: str | None, status: int = 200
) -> AsyncIterator[None]:
    """Record the action the block performs: ``ok`` with ``status``, or the error's code.

    The entry is written before the answer is sent, so an acknowledged action is always
    on record.
    """
    try:
        yield
    except TabopsError as exc:
        failed, code = status_of(exc)
        await run_in_threadpool(audit.record, audit_entry(context, target, code, failed))
        raise
    await run_in_threadpool(audit.record, audit_entry(context, target, "ok", status))
