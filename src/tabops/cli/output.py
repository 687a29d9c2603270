"""Shared console, error printing and registry access for the commands.

The command modules import only this, Typer, Rich and the light core (errors, the registry's
names) at module level: ``tabops --help`` must not wait for pandas, scikit-learn or FastAPI.
Everything else is imported inside the command that needs it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, NoReturn

import typer
from rich.console import Console, RenderableType

from tabops.errors import GateFailedError, TabopsError

if TYPE_CHECKING:
    from tabops.registry import ModelRegistry

# tabops.project.PROJECT_FILE, repeated so that option defaults need not import pandas.
PROJECT_FILE = "tabops.yaml"

console = Console()
error_console = Console(stderr=True)

EXIT_ERROR = 1
EXIT_GATE_FAILED = 3
# Wide enough for any table row; only used to measure what a row needs.
_UNBOUNDED_WIDTH = 1_000_000


def open_registry() -> ModelRegistry:
    """The registry the settings name (under ``TABOPS_HOME`` by default)."""
    from tabops.config import get_settings
    from tabops.registry import open_registry as registry_of

    return registry_of(get_settings())


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    """Print an error and leave with a non-zero exit code."""
    error_console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn a ``TabopsError`` into a readable message and an exit code, never a traceback."""
    try:
        yield
    except TabopsError as exc:
        for problem in exc.problems:
            error_console.print(f"  [red]•[/] {problem.field}: {problem.problem}")
        fail(exc.message, EXIT_GATE_FAILED if isinstance(exc, GateFailedError) else EXIT_ERROR)


def print_whole(renderable: RenderableType) -> None:
    """Print on the terminal's width, or whole when the output is a pipe or a file.

    Rich assumes 80 columns when it writes to something other than a terminal, cutting
    long names and squeezing columns; a CI log or ``| grep`` wants every value intact.
    """
    if console.is_terminal:
        console.print(renderable)
    elif isinstance(renderable, str):
        console.print(renderable, soft_wrap=True)
    else:
        options = console.options.update_width(_UNBOUNDED_WIDTH)
        width = console.measure(renderable, options=options).maximum
        Console(file=console.file, width=max(width, 1)).print(renderable)


def format_metric(value: object) -> str:
    """A metric for a table cell."""
    return f"{value:.3f}" if isinstance(value, float) else "-"


Printer = Callable[[str], None]
