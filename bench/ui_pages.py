"""Web UI benchmark: how long each page takes to answer with 100 registered versions.

Usage (from the repository root):
    .venv/bin/python bench/ui_pages.py [--versions 100] [--repeats 30] [--home DIR]
        [--predictions N]

Trains the heart-failure example once (a quick setting: one candidate, 3 folds) into a
temporary home, or uses ``--home`` (a TABOPS_HOME holding a trained ``heart-failure``), then
registers copies of its first version until the model has ``--versions`` versions, with
``production`` moved along them (so it has a history to roll back) and a tag on every tenth.
Each page in ``PAGES`` is then asked through ``TestClient`` (the whole app: middleware,
session check, rendering): the first answer apart (manifests not yet read), then the
median, 95th percentile and slowest of ``--repeats`` more, the page's size, and its weight
with the scripts and styles it links. Pages added later go in ``PAGES``.

``--predictions N`` first serves N predictions of the example's rows (the later half with
an older age, so drift shows) through ``POST /v1/models/{name}/predict/batch``, i.e. the
real serving core and ``PredictionLog``, into the home. The monitoring page's summary (a
pass over that log) is computed in the background: its "first" answer is the page saying
it is computing, "ready s" how long until the page shows the summary, and the later
answers serve that summary.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from example_home import HEART_CSV, MODEL, registry_of, train_example
from fastapi.testclient import TestClient

from tabops.config import Settings
from tabops.registry.tags import VersionTags
from tabops.server.app import create_app

_ASSET = re.compile(r'(?:href|src)="(/ui/static/[^"]+)"')

PAGES: list[tuple[str, Callable[[int], str]]] = [
    ("overview", lambda _n: "/ui"),
    ("model page", lambda _n: f"/ui/models/{MODEL}"),
    ("model page, earliest version chosen", lambda _n: f"/ui/models/{MODEL}?version=1"),
    ("promotion review", lambda n: f"/ui/models/{MODEL}/promote?version={n // 2}"),
    ("rollback review", lambda _n: f"/ui/models/{MODEL}/rollback?alias=production"),
    ("model card, latest version", lambda n: f"/ui/models/{MODEL}/versions/{n}/card"),
    ("predict form", lambda _n: f"/ui/models/{MODEL}/predict"),
    ("predict form, earliest version", lambda _n: f"/ui/models/{MODEL}/predict?version=1"),
    ("batch upload", lambda _n: f"/ui/models/{MODEL}/batch"),
    ("features", lambda _n: "/ui/features"),
    ("monitoring, 1 day", lambda _n: f"/ui/models/{MODEL}/monitoring?window=1d"),
    ("monitoring, 30 days", lambda _n: f"/ui/models/{MODEL}/monitoring?window=30d"),
]
"""(label, path given the number of versions): the pages timed, in order."""


def register_copies(home: Path, versions: int) -> None:
    """Copies of version 1 until there are ``versions``; production follows the last ones."""
    registry = registry_of(home)
    first = registry.get_version(MODEL, 1)
    files = {name: registry.read_file(MODEL, 1, name) for name in first.manifest.files}
    tags = VersionTags(registry.store)
    for _ in range(len(registry.list_versions(MODEL)), versions):
        number = registry.register(MODEL, files, first.manifest, first_alias=None).version
        if number % 10 == 0:
            tags.add(MODEL, number, [f"{number // 10}.0"])
    numbers = registry.list_versions(MODEL)
    for number in numbers[-3:]:
        registry.set_alias(MODEL, "production", number)
    registry.set_alias(MODEL, "staging", numbers[len(numbers) // 2])


LOG_BATCH_ROWS = 10_000


def log_predictions(home: Path, predictions: int) -> None:
    """Serve ``predictions`` rows through the batch route, logged as any served prediction."""
    frame = pd.read_csv(HEART_CSV)
    records = frame.drop(columns=["DEATH_EVENT"])
    older = records.assign(age=(records["age"] + 20).clip(upper=95))
    with TestClient(create_app(Settings(home=home, job_workers=0))) as client:
        log = client.app.state.prediction_log  # type: ignore[attr-defined]
        done = 0
        while done < predictions:
            source = records if done < predictions // 2 else older
            rows = min(LOG_BATCH_ROWS, predictions - done)
            chunk = source.sample(rows, replace=True, random_state=done).to_dict("records")
            answer = client.post(f"/v1/models/{MODEL}/predict/batch", json={"records": chunk})
            if answer.status_code != 200:
                raise SystemExit(f"batch answered {answer.status_code}: {answer.text[:300]}")
            log.flush()
            done += rows


def weigh(client: TestClient, page: str) -> int:
    """Bytes of the page and every script and style it links."""
    return len(page.encode()) + sum(
        len(client.get(asset).content) for asset in set(_ASSET.findall(page))
    )


COMPUTING = 'id="computing"'
READY_TIMEOUT_SECONDS = 600.0


def time_page(client: TestClient, path: str, repeats: int) -> dict[str, float]:
    """The first answer's seconds, when a computed page got ready, then ``repeats`` more.

    The later answers are summarised as their median, p95 and slowest.
    """
    started = time.perf_counter()
    first = client.get(path)
    first_seconds = time.perf_counter() - started
    if first.status_code != 200:
        raise SystemExit(f"{path} answered {first.status_code}: {first.text[:300]}")
    ready_seconds = float("nan")
    page = first
    while COMPUTING in page.text:
        if time.perf_counter() - started > READY_TIMEOUT_SECONDS:
            raise SystemExit(f"{path} was still computing after {READY_TIMEOUT_SECONDS} s")
        time.sleep(0.01)
        page = client.get(path)
        ready_seconds = time.perf_counter() - started
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        client.get(path)
        seconds.append(time.perf_counter() - started)
    seconds.sort()
    return {
        "first": first_seconds,
        "ready": ready_seconds,
        "median": statistics.median(seconds),
        "p95": seconds[min(len(seconds) - 1, round(0.95 * (len(seconds) - 1)))],
        "max": seconds[-1],
        "bytes": len(page.content),
        "weight": weigh(client, page.text),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--home", type=Path, help="a TABOPS_HOME with heart-failure trained")
    parser.add_argument("--predictions", type=int, default=0, help="predictions to log first")
    options = parser.parse_args()
    if options.versions < 2 or options.repeats < 1:
        parser.error("--versions must be 2 or more and --repeats 1 or more")
    print(f"Python {platform.python_version()}; {os.cpu_count()} CPUs")
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="tabops-ui-bench-") as work:
        home = Path(work) / "home"
        if options.home is not None:
            shutil.copytree(options.home, home)
        else:
            started = time.perf_counter()
            train_example(home, Path(work))
            print(f"trained version 1 in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        register_copies(home, options.versions)
        print(f"{options.versions} versions registered in {time.perf_counter() - started:.1f} s")
        if options.predictions > 0:
            started = time.perf_counter()
            log_predictions(home, options.predictions)
            seconds = time.perf_counter() - started
            print(f"{options.predictions:,} predictions served and logged in {seconds:.1f} s")
        with TestClient(create_app(Settings(home=home))) as client:
            print(
                f"{'page':<38} {'first ms':>9} {'ready s':>8} {'median ms':>10} {'p95 ms':>8}"
                f" {'max ms':>8} {'KB':>6} {'KB+assets':>10}"
            )
            for label, path_of in PAGES:
                timing = time_page(client, path_of(options.versions), options.repeats)
                print(
                    f"{label:<38} {timing['first'] * 1e3:>9.1f} {timing['ready']:>8.2f}"
                    f" {timing['median'] * 1e3:>10.1f}"
                    f" {timing['p95'] * 1e3:>8.1f} {timing['max'] * 1e3:>8.1f}"
                    f" {timing['bytes'] / 1024:>6.1f} {timing['weight'] / 1024:>10.1f}"
                )


if __name__ == "__main__":
    main()
