"""API key endpoints (admin): create a key, list keys, revoke one."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.concurrency import run_in_threadpool

from tabops.errors import InvalidRequestError, Problem
from tabops.security.tokens import parse_expiry
from tabops.server.auditing import audited
from tabops.server.deps import AdminAccess, AuditDep, ContextDep, KeysDep, PolicyDep
from tabops.server.schemas import ErrorResponse, KeyCreatedResponse, KeyRequest, KeyResponse

router = APIRouter(prefix="/v1/keys", tags=["keys"])


@router.post(
    "",
    status_code=201,
    response_model=KeyCreatedResponse,
    responses={422: {"model": ErrorResponse, "description": "An invalid scope, model or lifetime"}},
    summary="Create an API key",
)
async def create_key(
    body: KeyRequest,
    _caller: AdminAccess,
    keys: KeysDep,
    policy: PolicyDep,
    audit: AuditDep,
    context: ContextDep,
) -> dict[str, Any]:
    """A new key and its token, shown in this answer only (the server keeps a hash).

    The first key ends anonymous access: from then on every request needs a key.
    """
    async with audited(audit, context, body.name, 201):
        expires = None
        if body.expires is not None:
            try:
                expires = parse_expiry(body.expires)
            except ValueError as exc:
                raise InvalidRequestError(
                    "the key cannot be created", [Problem("expires", str(exc))]
                ) from None
        key, token = await run_in_threadpool(
            keys.create, body.name, body.scope, body.models, expires, body.rate_per_second
        )
        policy.forget()
    return key.describe() | {"token": token}


@router.get("", response_model=list[KeyResponse], summary="List API keys")
def list_keys(_caller: AdminAccess, keys: KeysDep) -> list[dict[str, Any]]:
    """Every key, revoked and expired ones included (never a token or hash)."""
    return [key.describe() for key in keys.all()]


@router.delete(
    "/{key_id}",
    status_code=204,
    responses={404: {"model": ErrorResponse, "description": "No key with that id or prefix"}},
    summary="Revoke an API key",
)
async def revoke_key(
    key_id: str,
    _caller: AdminAccess,
    keys: KeysDep,
    policy: PolicyDep,
    audit: AuditDep,
    context: ContextDep,
) -> Response:
    """Revoke a key (by id or token prefix); every server process refuses it within seconds."""
    async with audited(audit, context, key_id, 204):
        await run_in_threadpool(keys.revoke, key_id)
        policy.forget()
    return Response(status_code=204)
