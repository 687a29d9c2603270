"""Moving a model's alias from a request: the registry's rules, the audit log, served at once.

Every way a request moves an alias (the UI's promote and roll back pages, any API route)
goes through these two functions, so each move is checked by the registry, recorded in the
audit log under the request's caller, and served by this process from its next request.
"""

from __future__ import annotations

from fastapi.concurrency import run_in_threadpool

from tabops.security.audit import AuditLog
from tabops.server.auditing import audited
from tabops.serving.context import RequestContext
from tabops.serving.deployment import Deployment


async def promote_version(
    deployment: Deployment,
    audit: AuditLog,
    context: RequestContext,
    name: str,
    alias: str,
    version: int,
) -> int | None:
    """Point ``name@alias`` at ``version``; returns the version it pointed at before (if any).

    Raises:
        RegistryError: an invalid alias, or the record kept changing (``ModelNotFoundError``
            and ``VersionNotFoundError`` for an unknown model or version).
    """
    async with audited(audit, context, f"{name}@{alias}"):
        previous = await run_in_threadpool(deployment.registry.set_alias, name, alias, version)
        # This process serves the new target at once; others re-read aliases within seconds.
        deployment.forget_aliases(name)
    return previous


async def roll_back_alias(
    deployment: Deployment, audit: AuditLog, context: RequestContext, name: str, alias: str
) -> tuple[int, int]:
    """Point ``name@alias`` back at the version it pointed at before; returns (from, to).

    Raises:
        RegistryError: the alias has no earlier version (``VersionNotFoundError``: no such
            alias).
    """
    async with audited(audit, context, f"{name}@{alias}"):
        moved = await run_in_threadpool(deployment.registry.rollback, name, alias)
        deployment.forget_aliases(name)
    return moved
