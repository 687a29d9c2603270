"""Recording an admin action in the audit log, whichever way it ends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi.concurrency import run_in_threadpool

from tabops.errors import TabopsError
from tabops.security.audit import AuditEntry, AuditLog
from tabops.server.errors import status_of
from tabops.serving.context import RequestContext


def entry_of(context: RequestContext, target: str | None, outcome: str, status: int) -> AuditEntry:
    """The audit entry of a request by the caller ``context`` has let through."""
    caller = context.caller
    return AuditEntry(
        action=context.route,
        outcome=outcome,
        status=status,
        target=target,
        key_id=caller.key_id if caller else None,
        key_name=caller.name if caller else None,
        client=context.client,
        request_id=context.request_id,
    )


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
        await run_in_threadpool(audit.record, entry_of(context, target, code, failed))
        raise
    await run_in_threadpool(audit.record, entry_of(context, target, "ok", status))
