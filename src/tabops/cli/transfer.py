"""``tabops models push | pull | tag``: copy versions between registries and tag them.

A store is named by URL: ``s3://bucket[/prefix]``, ``file:///path`` or a folder. Push copies
from the configured registry into it; pull copies from it into the configured registry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from tabops.cli.output import console, fail, open_registry, print_whole, reported_errors
from tabops.registry.versions import parse_model_ref

if TYPE_CHECKING:
    from tabops.registry import ModelRegistry
    from tabops.registry.transfer import CopyProgress, CopyResult

ModelArgument = Annotated[
    str, typer.Argument(help="NAME (its production version), NAME@alias, NAME@tag or NAME:version.")
]
TagOption = Annotated[
    list[str] | None,
    typer.Option("--tag", "-t", metavar="TAG", help="Tag to give the copy (repeat for several)."),
]
PromoteOption = Annotated[
    str | None,
    typer.Option(metavar="ALIAS", help="Point this alias at the copy."),
]
_STORE_HELP = "Store URL: s3://bucket, s3://bucket/prefix or a folder."
ToOption = Annotated[str, typer.Option("--to", metavar="URL", help=_STORE_HELP)]
FromOption = Annotated[str, typer.Option("--from", metavar="URL", help=_STORE_HELP)]


def open_registry_at(url: str) -> ModelRegistry:
    """The registry at a store URL, with the configured signing key and cache."""
    from tabops.config import get_settings
    from tabops.registry import open_registry as registry_of

    settings = get_settings()
    registry = settings.registry.model_copy(update={"url": url})
    return registry_of(settings.model_copy(update={"registry": registry}))


def push(
    model: ModelArgument, to: ToOption, tag: TagOption = None, promote: PromoteOption = None
) -> None:
    """Copy a version (files checked, tags too) from the configured registry to a store."""
    _copy(model, tag or [], promote, target_url=to)


def pull(
    model: ModelArgument,
    source_url: FromOption,
    tag: TagOption = None,
    promote: PromoteOption = None,
) -> None:
    """Copy a version (files checked, tags too) from a store into the configured registry."""
    _copy(model, tag or [], promote, source_url=source_url)


def _copy(
    model: str,
    tags: list[str],
    promote: str | None,
    *,
    source_url: str | None = None,
    target_url: str | None = None,
) -> None:
    """Copy between the store at a URL and the configured registry (a URL of None)."""
    from tabops.registry.transfer import copy_version

    with reported_errors():
        source, target = _registry_at(source_url), _registry_at(target_url)
    where = f"from {source_url}" if target_url is None else f"to {target_url}"
    name, ref = parse_model_ref(model)
    with reported_errors(), _byte_progress() as progress:
        result = copy_version(source, target, name, ref, tags, promote=promote, progress=progress)
    print_whole(_describe(result, where))
    if result.is_signed_for_target is False:
        console.print(
            f"[yellow]note:[/] its manifest is not signed with the signing key set for the "
            f"target; servers there refuse it until 'tabops models sign {name} --version "
            f"{result.version}' is run against that registry"
        )


def _registry_at(url: str | None) -> ModelRegistry:
    return open_registry() if url is None else open_registry_at(url)


def _describe(result: CopyResult, where: str) -> str:
    source = f"{result.name}:{result.source_version}"
    tags = f"; tags {', '.join(result.tags)}" if result.tags else ""
    size = f" ({result.size_bytes / 1e6:,.1f} MB)"
    if result.status == "already present":
        return f"{source} {where}: already present as {result.ref}{tags}"
    if result.status == "renumbered":
        return (
            f"copied {source} {where} as {result.ref}{size}, since number "
            f"{result.source_version} there holds another version{tags}"
        )
    return f"copied {source} {where} as {result.ref}{size}{tags}"


@contextmanager
def _byte_progress() -> Iterator[CopyProgress]:
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TransferSpeedColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("reading", total=None)

        def advance(stage: str, done: int, total: int | None) -> None:
            bar.update(task, description=stage, completed=done, total=total)

        yield advance


def tag(
    model: Annotated[str, typer.Argument(help="NAME:VERSION or NAME@alias.")],
    tags: Annotated[
        list[str] | None, typer.Argument(help="Tags to add (or remove); none: show its tags.")
    ] = None,
    remove: Annotated[bool, typer.Option("--remove", help="Take the tags off instead.")] = False,
) -> None:
    """Add tags (e.g. 1.0) to a version, take them off, or show them."""
    from tabops.registry.tags import VersionTags

    name, ref = parse_model_ref(model)
    if ref is None:
        fail("name the version: NAME:VERSION or NAME@alias")
    if remove and not tags:
        fail("name the tags to remove")
    registry = open_registry()
    with reported_errors():
        number = registry.resolve(name, ref)
        version_tags = VersionTags(registry.store)
        if not tags:
            held = version_tags.of(name).get(number, [])
        elif remove:
            held = version_tags.remove(name, number, tags)
        else:
            held = version_tags.add(name, number, tags)
    shown = ", ".join(held) if held else "none"
    print_whole(f"{name}:{number} tags: {shown}")


def add_commands(app: typer.Typer) -> None:
    """Register push, pull and tag on the ``models`` group."""
    command: Callable[..., object]
    for command in (push, pull, tag):
        app.command()(command)
