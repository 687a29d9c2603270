"""``tabops models import``: register a classifier trained elsewhere, with a sample of its data.

Exit codes, as ``tabops train``: 0 imported, 1 refused or failed (an unsafe pickle, a file
that is not a binary classifier, a sample that does not fit it...), 3 a gate failed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from tabops.cli.output import console, error_console, fail, format_metric, print_whole

if TYPE_CHECKING:
    from tabops.training.importing import ImportOutcome

_GATE = re.compile(r"^\s*([a-z0-9_]+)\s*(>=|<=|>|<)\s*(-?\d+(?:\.\d+)?)\s*$")
TRUST_WARNING = (
    "--trust-pickle: {path} will be unpickled even though it imports code outside the "
    "allow-list. Unpickling runs whatever code the file holds, with your permissions "
    "(in a separate process, which does not contain it). Use it only for a file you "
    "made yourself or got from someone you trust."
)


def import_model(
    path: Annotated[
        Path,
        typer.Argument(
            exists=True,
            help="A pickle, joblib or skops file, or an MLflow model folder.",
        ),
    ],
    name: Annotated[str, typer.Option("--name", help="Model to register the version under.")],
    sample: Annotated[
        Path,
        typer.Option(
            "--sample", exists=True, dir_okay=False, help="CSV or Parquet rows the model takes."
        ),
    ],
    target: Annotated[
        str | None,
        typer.Option(
            metavar="COLUMN",
            help="Column of the sample with the true labels: metrics, gates and a model card.",
        ),
    ] = None,
    trust_pickle: Annotated[
        bool,
        typer.Option(
            "--trust-pickle",
            help="Load a pickle that imports code outside the allow-list (runs its code).",
        ),
    ] = False,
    positive_class: Annotated[
        str | None,
        typer.Option(
            help="The class whose probability is scored (default: the second of the model's)."
        ),
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="Probability from which a row is positive."),
    ] = None,
    gate: Annotated[
        list[str] | None,
        typer.Option(
            "--gate",
            metavar="METRIC>=VALUE",
            help="A metric the sample must reach (needs --target), e.g. 'roc_auc>=0.8'; repeat.",
        ),
    ] = None,
    promote: Annotated[
        str | None,
        typer.Option(metavar="ALIAS", help="Point this alias (e.g. production) at the version."),
    ] = None,
    compile_tolerance: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Largest difference from scikit-learn's probabilities the compiled graph may "
            "show; beyond it the version is served by scikit-learn.",
        ),
    ] = 1e-9,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")] = False,
) -> None:
    """Register a classifier trained elsewhere as a new version, checked on a data sample.

    The model must have predict_proba over two classes: a scikit-learn pipeline or any
    such classifier (pickle or joblib file), a skops file, or an MLflow model folder. A
    pickle that would import code outside the allow-list is refused before it is loaded,
    unless --trust-pickle is given. The version is served like a trained one: through a
    compiled ONNX graph when it reproduces scikit-learn's probabilities, else through
    scikit-learn. Exit codes: 0 imported, 1 refused or failed, 3 a gate failed.
    """
    from tabops.cli.output import open_registry, reported_errors
    from tabops.registry.versions import check_alias, check_model_name
    from tabops.training.importing import ImportOptions
    from tabops.training.importing import import_model as import_version

    with reported_errors():
        check_model_name(name)
        if promote is not None:
            check_alias(promote)
    options = ImportOptions(
        target=target,
        trust_pickle=trust_pickle,
        positive_class=positive_class,
        threshold=threshold,
        gates=_parse_gates(gate or []),
        compile_tolerance=compile_tolerance,
    )
    if trust_pickle:
        error_console.print(f"[bold yellow]warning:[/] {escape(TRUST_WARNING.format(path=path))}")
    registry = open_registry()
    with reported_errors():
        if as_json:
            outcome = import_version(path, name, sample, registry, options)
        else:
            outcome = _import_showing_steps(path, name, sample, registry, options)
        if promote is not None:
            registry.set_alias(name, promote, outcome.version.version)
        aliases = registry.aliases(name)
    if as_json:
        print_whole(json.dumps(_document(outcome, aliases), indent=2, default=str))
    else:
        _print_summary(outcome, aliases)


def _parse_gates(texts: list[str]) -> dict[str, str]:
    """``['roc_auc>=0.8']`` as the project file writes gates: ``{'roc_auc': '>= 0.8'}``."""
    gates: dict[str, str] = {}
    for text in texts:
        match = _GATE.match(text)
        if match is None:
            fail(f"--gate {text!r} is not like 'roc_auc>=0.8'")
        metric, operator, value = match.groups()
        if metric in gates:
            fail(f"two gates on {metric}: give one per metric")
        gates[metric] = f"{operator} {value}"
    return gates


def _import_showing_steps(
    path: Path, name: str, sample: Path, registry: Any, options: Any
) -> ImportOutcome:
    """Import with a spinner while it works and a line for each step done."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from tabops.training.importing import import_model as import_version

    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        progress.add_task(f"importing {escape(path.name)}", total=None)

        def show(step: str) -> None:
            progress.console.print(f"[green]✓[/] {escape(step)}")

        return import_version(path, name, sample, registry, options, show)


def _document(outcome: ImportOutcome, aliases: dict[str, int]) -> dict[str, Any]:
    version = outcome.version
    return {
        "name": version.name,
        "version": version.version,
        "aliases": sorted(a for a, v in aliases.items() if v == version.version),
        "runtime": outcome.compiled,
        "source": outcome.source,
        "notes": outcome.notes,
        "manifest": version.manifest.document(),
    }


def _print_summary(outcome: ImportOutcome, aliases: dict[str, int]) -> None:
    version, manifest = outcome.version, outcome.version.manifest
    held = sorted(a for a, v in aliases.items() if v == version.version)
    suffix = f" ({', '.join(held)})" if held else ""
    console.print(f"[green]registered[/] {version.ref}{suffix}")
    source = outcome.source
    what = source.get("estimator_type") or source.get("estimator") or "a classifier"
    print_whole(f"  source: {source.get('format', '?')} file {source.get('file', '')}, {what}")
    print_whole(f"  runtime: {_describe_runtime(outcome)}")
    print_whole(f"  threshold: {manifest.threshold:g}")
    if manifest.metrics:
        parts = []
        for metric, value in manifest.metrics.items():
            interval = manifest.intervals.get(metric)
            around = f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else ""
            parts.append(f"{metric} {format_metric(value)}{around}")
        print_whole(f"  metrics on the sample: {', '.join(parts)}")
    else:
        print_whole("  metrics: none (give --target COLUMN to measure the model on the sample)")
    for gate in manifest.gates:
        print_whole(f"  gate {gate.get('gate')}: passed ({format_metric(gate.get('observed'))})")
    for note in outcome.notes:
        print_whole(f"  note: {note}")
    if aliases:
        moved = ", ".join(f"{alias} -> {number}" for alias, number in sorted(aliases.items()))
        print_whole(f"  aliases of {version.name}: {moved}")
    console.print("serve it:")
    print_whole(f"  tabops serve   (then POST /v1/models/{version.name}/predict)")
    print_whole(f"  tabops predict -m {version.ref} -i rows.csv -o scored.csv")
    if "production" not in held:
        print_whole(f"  tabops models promote {version.name} {version.version}   (to serve it)")


def _describe_runtime(outcome: ImportOutcome) -> str:
    compiled = outcome.version.manifest.compiled
    if compiled is None:
        return outcome.compiled
    if compiled.runtime == "onnxruntime" and compiled.max_abs_difference is not None:
        return (
            f"onnxruntime (the compiled graph matches scikit-learn within "
            f"{compiled.max_abs_difference:.1e} on {compiled.rows_checked} rows)"
        )
    reason = f": {compiled.reason}" if compiled.reason else ""
    return f"{compiled.runtime}{reason}"
