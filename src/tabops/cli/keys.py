"""``tabops keys`` (create, list, revoke API keys) and ``tabops audit`` (read the audit log).

Both work on the metadata database of ``TABOPS_HOME`` (or ``TABOPS_DATABASE__URL``), so they
run on the server's host or anywhere that reaches its database; each change is audited.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer

from tabops.cli.output import console, print_whole, reported_errors

if TYPE_CHECKING:
    from tabops.security.audit import AuditLog
    from tabops.security.keys import ApiKey, KeyStore

app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)

_CLI_STATUS = 0  # the audit log's status of an action taken on the command line


def _stores() -> tuple[KeyStore, AuditLog]:
    from tabops.config import get_settings
    from tabops.database import open_database
    from tabops.security.audit import AuditLog
    from tabops.security.keys import KeyStore

    engine = open_database(get_settings())
    return KeyStore(engine), AuditLog(engine)


def _record(audit: AuditLog, action: str, target: str) -> None:
    import getpass

    from tabops.security.audit import AuditEntry

    entry = AuditEntry(
        action=f"tabops keys {action}",
        outcome="ok",
        status=_CLI_STATUS,
        target=target,
        client=f"command line ({getpass.getuser()})",
    )
    audit.record(entry)


@app.command("create")
def create_key(
    name: Annotated[str, typer.Argument(help="Who or what holds the key.")],
    scope: Annotated[
        str, typer.Option(help="read < predict < admin: each includes the ones before it.")
    ],
    model: Annotated[
        list[str] | None,
        typer.Option("--model", help="A model the key may use (repeat); all if omitted."),
    ] = None,
    expires: Annotated[
        str | None, typer.Option(help="A lifetime (90m, 12h, 30d, 2w) or an ISO date.")
    ] = None,
    rate: Annotated[
        float | None, typer.Option(help="The key's own limit, in requests per second.")
    ] = None,
) -> None:
    """Create a key and print its token once: only its hash is stored."""
    from tabops.errors import InvalidRequestError, Problem
    from tabops.security.tokens import parse_expiry

    with reported_errors():
        until = None
        if expires is not None:
            try:
                until = parse_expiry(expires)
            except ValueError as exc:
                raise InvalidRequestError(
                    "the key cannot be created", [Problem("--expires", str(exc))]
                ) from None
        keys, audit = _stores()
        key, token = keys.create(name, scope, model or None, until, rate)
        _record(audit, "create", f"{key.id} ({key.name})")
    console.print(f"created key {key.id} ({key.name}), scope {key.scope}; its token:")
    # Printed bare on its own line, so `tail -n 1` or a copy takes exactly the token.
    print(token)  # the one place the token is ever shown
    console.print("store it now: tabops keeps only its hash and cannot show it again.")


@app.command("list")
def list_keys() -> None:
    """Every key, with its status (active, expired, revoked); never a token."""
    from rich.table import Table

    with reported_errors():
        keys, _audit = _stores()
        found = keys.all()
    table = Table()
    for heading in ("id", "name", "prefix", "scope", "models", "rate/s", "expires", "status"):
        table.add_column(heading)
    for key in found:
        table.add_row(*_row(key))
    print_whole(table)


def _row(key: ApiKey) -> list[str]:
    def moment(value: datetime | None) -> str:
        return value.strftime("%Y-%m-%d %H:%M") if value else "-"

    return [
        key.id,
        key.name,
        key.prefix,
        key.scope,
        ", ".join(sorted(key.models)) if key.models else "all",
        f"{key.rate_per_second:g}" if key.rate_per_second else "-",
        moment(key.expires),
        key.status(),
    ]


@app.command("revoke")
def revoke_key(key: Annotated[str, typer.Argument(help="The key's id or token prefix.")]) -> None:
    """Revoke a key: every server refuses it within seconds."""
    with reported_errors():
        keys, audit = _stores()
        revoked = keys.revoke(key)
        _record(audit, "revoke", f"{revoked.id} ({revoked.name})")
    console.print(f"revoked key {revoked.id} ({revoked.name})")


def show_audit(
    limit: Annotated[int, typer.Option(min=1, help="How many entries, newest first.")] = 50,
    action: Annotated[str | None, typer.Option(help="Only this action.")] = None,
    outcome: Annotated[
        str | None, typer.Option(help="Only this outcome: ok, not_authenticated, ...")
    ] = None,
    key: Annotated[str | None, typer.Option(help="Only this key's id.")] = None,
    since: Annotated[
        datetime | None, typer.Option(help="Only entries at or after this time (UTC).")
    ] = None,
) -> None:
    """The audit log: every admin action and every refused request, newest first."""
    from datetime import UTC

    from rich.table import Table

    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    with reported_errors():
        _keys, audit = _stores()
        entries = audit.recent(limit, action=action, outcome=outcome, key_id=key, since=since)
    table = Table()
    for heading in ("time (UTC)", "key", "action", "target", "outcome", "status", "client"):
        table.add_column(heading)
    for entry in entries:
        table.add_row(
            entry.at.strftime("%Y-%m-%d %H:%M:%S"),
            entry.key_name or entry.key_id or "-",
            entry.action,
            entry.target or "-",
            entry.outcome,
            str(entry.status) if entry.status else "-",
            entry.client or "-",
        )
    print_whole(table)
