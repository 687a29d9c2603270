"""The audit log endpoint (admin): admin actions and refused requests, newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query

from tabops.server.deps import AdminAccess, AuditDep
from tabops.server.schemas import AuditEntryResponse

router = APIRouter(prefix="/v1/audit", tags=["audit"])


@router.get("", response_model=list[AuditEntryResponse], summary="Read the audit log")
def list_audit_entries(
    _caller: AdminAccess,
    audit: AuditDep,
    limit: int = Query(default=100, ge=1, le=10_000),
    action: str | None = Query(default=None, max_length=300),
    outcome: str | None = Query(default=None, max_length=64),
    key_id: str | None = Query(default=None, max_length=32),
    since: datetime | None = None,
) -> list[dict[str, Any]]:
    """Who did what, when, and how it ended: every admin action and every refusal."""
    audit.flush()
    entries = audit.recent(limit, action=action, outcome=outcome, key_id=key_id, since=since)
    return [entry.__dict__ for entry in entries]
