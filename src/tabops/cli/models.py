"""``tabops models``: list, show, promote, roll back and sign versions; the default model; cards."""

from __future__ import annotations

import json
import os
import tempfile
import webbrowser
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from tabops.cli import importing, transfer
from tabops.cli.output import (
    console,
    error_console,
    fail,
    format_metric,
    open_registry,
    print_whole,
    reported_errors,
)
from tabops.errors import TabopsError
from tabops.registry.versions import DEFAULT_ALIAS, parse_model_ref

_METRICS = ("roc_auc", "pr_auc", "f1")
app = typer.Typer(help="Inspect and manage registered models.", no_args_is_help=True)


@app.command("list")
def list_models(
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            metavar="URL",
            help="List this store: s3://bucket, s3://bucket/prefix or a folder.",
        ),
    ] = None,
) -> None:
    """Every version of every model, with its metrics, aliases and tags."""
    from tabops.registry.tags import VersionTags

    with reported_errors():
        registry = open_registry() if store is None else transfer.open_registry_at(store)
    rows: list[list[str]] = []
    with reported_errors():
        for name in registry.list_models():
            aliases = registry.aliases(name)
            tags = VersionTags(registry.store).of(name)
            for number in registry.list_versions(name):
                summary = registry.summarize_version(name, number)
                rows.append(
                    [
                        name,
                        str(number),
                        ", ".join(sorted(a for a, v in aliases.items() if v == number)),
                        (summary.created or "")[:10],
                        *(format_metric(summary.metrics.get(metric)) for metric in _METRICS),
                        ", ".join(tags.get(number, [])),
                    ]
                )
    if not rows:
        console.print(
            f"{store} holds no models"
            if store
            else "no models registered yet; train one with 'tabops train'"
        )
        return
    table = Table(title="models", box=box.SIMPLE_HEAD)
    # Names and aliases are never cut ("heart-f…" is no use); 'models show' has the rest.
    # On a terminal, a row wider than the window is cropped; elsewhere it is printed whole.
    for heading in ("model", "version", "aliases"):
        table.add_column(heading, no_wrap=True, overflow="ignore")
    table.add_column("created", no_wrap=True)
    for metric in _METRICS:
        table.add_column(metric.replace("_", " ").upper(), no_wrap=True)
    has_tags = any(row[-1] for row in rows)  # most registries have none: no empty column
    if has_tags:
        table.add_column("tags", no_wrap=True, overflow="ignore")
    for row in rows:
        table.add_row(*(row if has_tags else row[:-1]))
    print_whole(table)
    with reported_errors():
        default = registry.default_model()
        if store is None:
            print_whole(_describe_default(default))
        else:
            print_whole(f"default model: {default}" if default else "no default model recorded")


def _describe_default(recorded: str | None) -> str:
    """Which model answers POST /predict, and what chose it."""
    from tabops.config import get_settings

    configured = get_settings().serving.default_model
    if configured:
        also = f"; the registry records {recorded}" if recorded and recorded != configured else ""
        return (
            f"default model (POST /predict): {configured}, "
            f"set by the serving.default_model setting{also}"
        )
    if recorded is None:
        return "no default model (POST /predict): choose one with 'tabops models default NAME'"
    return f"default model (POST /predict): {recorded}"


@app.command()
def show(
    model: Annotated[str, typer.Argument(help="NAME, NAME@alias or NAME:version.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole manifest.")] = False,
) -> None:
    """A version's manifest: metrics, threshold, features, data and library versions."""
    name, ref = parse_model_ref(model)
    with reported_errors():
        version = open_registry().get_version(name, ref)
    manifest = version.manifest
    if as_json:
        console.print_json(json.dumps(manifest.document()))
        return
    console.print(f"[bold]{version.ref}[/] created {manifest.created}")
    console.print(f"candidate: {manifest.candidate}, threshold {manifest.threshold:.4f}")
    metrics = ", ".join(f"{k} {format_metric(v)}" for k, v in manifest.metrics.items())
    console.print(f"test metrics: {metrics}")
    features = manifest.feature_spec.feature_names
    console.print(f"features ({len(features)}): {', '.join(features)}")
    data = manifest.data
    if data is not None:
        console.print(f"data: {data.path} sha256 {data.sha256[:16]}…, rows {data.rows}")
    console.print(f"trained in {manifest.training_seconds} s")
    console.print(f"libraries: {manifest.library_versions}")


@app.command()
def card(
    model: Annotated[str, typer.Argument(help="NAME, NAME@alias or NAME:version.")],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="File to write [default: ./NAME-VERSION-card.html].",
            dir_okay=False,
        ),
    ] = None,
    open_card: Annotated[
        bool, typer.Option("--open", help="Open the written card in a web browser.")
    ] = False,
) -> None:
    """Write a version's model card (one self-contained HTML page) to a file."""
    from tabops.model.files import CARD_FILE

    name, ref = parse_model_ref(model)
    registry = open_registry()
    with reported_errors():
        version = registry.get_version(name, ref)
    try:
        page = registry.read_file(name, version.version, CARD_FILE)
    except FileNotFoundError:
        fail(f"{version.ref} has no model card (versions trained before cards have none)")
    path = output or Path(f"{name}-{version.version}-card.html")
    try:
        _write_atomically(path, page)
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror or exc}")
    console.print(str(path), markup=False, highlight=False, soft_wrap=True)
    if open_card:
        webbrowser.open(path.resolve().as_uri())


def _write_atomically(path: Path, data: bytes) -> None:
    """Write beside the target, then rename over it: never a half-written card."""
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    umask = os.umask(0)
    os.umask(umask)
    try:
        # mkstemp makes the file private (0600); a card is an ordinary document.
        os.fchmod(handle, 0o666 & ~umask)
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


@app.command("default")
def default_model(
    name: Annotated[
        str | None, typer.Argument(help="Model to answer POST /predict; omit to show it.")
    ] = None,
) -> None:
    """Show or choose the model that answers POST /predict (servers follow within seconds)."""
    registry = open_registry()
    with reported_errors():
        if name is None:
            print_whole(_describe_default(registry.default_model()))
            return
        previous = registry.set_default_model(name)
    was = f" (was {previous})" if previous is not None and previous != name else ""
    console.print(f"[green]default model[/] -> {name}{was}")
    from tabops.config import get_settings

    configured = get_settings().serving.default_model
    if configured and configured != name:
        console.print(
            f"[yellow]note:[/] the serving.default_model setting ({configured}) overrides "
            "the registry's default where it is set, as it is here"
        )


@app.command()
def promote(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version number.")],
    alias: Annotated[str, typer.Option(help="Alias to point at the version.")] = DEFAULT_ALIAS,
) -> None:
    """Point an alias (production by default) at a version."""
    with reported_errors():
        previous = open_registry().set_alias(name, alias, version)
    was = f" (was {previous})" if previous is not None else ""
    console.print(f"[green]{name}@{alias}[/] -> version {version}{was}")


@app.command()
def rollback(
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[str, typer.Option(help="Alias to move back.")] = DEFAULT_ALIAS,
) -> None:
    """Point an alias back at the version it pointed to before."""
    with reported_errors():
        current, target = open_registry().rollback(name, alias)
    console.print(f"[green]{name}@{alias}[/] rolled back from version {current} to {target}")


@app.command()
def sign(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[
        int | None, typer.Option(help="Sign this version only [default: every version].")
    ] = None,
    previous_key_env: Annotated[
        str | None,
        typer.Option(
            "--previous-key-env",
            metavar="VARIABLE",
            help="Environment variable holding the key the versions were signed with until "
            "now: their signatures are checked with it, then replaced (key rotation).",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Also re-sign versions whose signature matches no key given."),
    ] = False,
) -> None:
    """Sign versions with TABOPS_SIGNING_KEY, once every file matches its sha256.

    Versions registered while a key is set are signed already; this signs those from
    before, and re-signs them all when the key changes. Restart servers afterwards: a
    server keeps refusing a version it refused once.
    """
    from tabops.registry.signing import ManifestSigner, sign_version

    previous = []
    if previous_key_env is not None:
        secret = os.environ.get(previous_key_env)
        if not secret:
            fail(f"the environment variable {previous_key_env} is not set")
        previous.append(ManifestSigner(secret))
    registry = open_registry()
    failed = 0
    with reported_errors():
        numbers = [version] if version is not None else registry.list_versions(name)
        if not numbers:
            registry.resolve(name)  # raises the not-found error
    for number in numbers:
        try:
            result = sign_version(registry, name, number, previous, force=force)
        except TabopsError as exc:
            failed += 1
            error_console.print(f"[red]not signed:[/] {escape(exc.message)}")
            continue
        console.print(f"{result.name}:{result.version} {result.status} (key id {result.key_id})")
    if failed:
        fail(f"{failed} version(s) of {name} not signed")


transfer.add_commands(app)
app.command("import")(importing.import_model)
