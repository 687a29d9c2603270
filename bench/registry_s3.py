"""The registry on S3: serve start-up over many versions, and push/pull of a large version.

Usage (from the repository root):
    .venv/bin/python bench/registry_s3.py [--versions 20] [--rows 12000] [--repeats 3]
                                          [--skip-startup] [--skip-transfer]

Starts ``moto_server`` on 127.0.0.1 (a free port) and prints, best and median of
``--repeats``:

- start-up: seconds from launching ``tabops serve`` to ``/readyz`` answering 200, with
  ``TABOPS_REGISTRY__URL=s3://...`` holding ``--versions`` versions of the heart-failure
  example (logistic regression), production on the newest: cold (empty cache under a fresh
  home), warm (again on the same home and cache), and the same versions in a local folder
  for scale, since imports dominate a launch; then the registry reads alone, in process;
- transfer: a random forest trained by ``tabops train`` on a synthetic noisy table of
  ``--rows`` rows (fully grown trees: model.skops plus its ONNX graph make ~100 MB at the
  default), pushed to the bucket (``copy_version`` from the local registry) and pulled back
  into an empty local registry through a fresh cache, in MB/s; beside it boto3 alone putting
  and getting one object of the same size. The server is moto, a Python process on the same
  cores as the client: these numbers are a floor, not what a real S3 endpoint gives.

Prints numbers; never asserts.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from peers.models import train_fast_example
from peers.processes import free_port, last_line, run_logged
from s3_client import DUMMY_KEYS, moto_server
from sklearn.datasets import make_classification

MODEL = "heart-failure"
LARGE_MODEL = "large-forest"
BUCKET = "bench-registry"
READY_SECONDS = 120.0
POLL_SECONDS = 0.02
TABOPS = str(Path(sys.executable).parent / "tabops")
LARGE_TRAIN = {
    "candidates": ["random_forest"],
    "search_settings": 1,  # the first setting: fully grown trees (min_samples_leaf 1)
    "cv_folds": 2,
    "calibration": "none",
    "bootstrap_resamples": 0,
    "time_budget_s": 3600,
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=20, help="versions on S3 at start-up")
    parser.add_argument("--rows", type=int, default=12_000, help="rows of the large model's table")
    parser.add_argument("--repeats", type=int, default=3, help="times each is measured")
    parser.add_argument("--skip-startup", action="store_true")
    parser.add_argument("--skip-transfer", action="store_true")
    return parser.parse_args()


def settings_at(home: Path, url: str) -> Any:
    from tabops.config import Settings

    return Settings(home=home, registry={"url": url})


def environment(home: Path, url: str | None = None) -> dict[str, str]:
    """This process's environment with only the TABOPS_* settings given here."""
    kept = {key: value for key, value in os.environ.items() if not key.startswith("TABOPS_")}
    registry = {"TABOPS_REGISTRY__URL": url} if url else {}
    return {**kept, "TABOPS_HOME": str(home), **registry}


def seconds_to_ready(home: Path, url: str, log: Path) -> float:
    """Launch ``tabops serve`` and time it until /readyz answers 200; then stop it."""
    port = free_port()
    command = [
        TABOPS,
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    started = time.perf_counter()
    with log.open("ab") as output:
        server = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=environment(home, url)
        )
    try:
        while True:
            elapsed = time.perf_counter() - started
            if server.poll() is not None:
                raise RuntimeError(f"tabops serve exited: {last_line(log)}")
            if elapsed > READY_SECONDS:
                raise RuntimeError(f"not ready after {READY_SECONDS:.0f} s: {last_line(log)}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as reply:
                    if reply.status == 200:
                        return elapsed
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(POLL_SECONDS)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def registry_reads(settings: Any) -> float:
    """Seconds to read what a server reads of its registry to start: the default model, every
    model's versions and aliases, and the production version's manifest and files."""
    from tabops.registry import open_registry

    started = time.perf_counter()
    registry = open_registry(settings)
    name = registry.default_model()
    for model in registry.list_models():
        registry.list_versions(model)
        registry.aliases(model)
    version = registry.get_version(name or MODEL)
    for file in version.manifest.files:
        registry.read_file(version.name, version.version, file)
    return time.perf_counter() - started


def bench_startup(work: Path, versions: int, repeats: int) -> None:
    from tabops.registry import LocalArtifactStore, ModelRegistry, open_registry
    from tabops.registry.transfer import copy_version

    trained = ModelRegistry(LocalArtifactStore(train_fast_example(work / "fast") / "registry"))
    manifest = trained.get_version(MODEL, 1).manifest
    files = {file: trained.read_file(MODEL, 1, file) for file in manifest.files}
    url = f"s3://{BUCKET}/serving"
    folder = work / "local-registry"
    for target in (
        open_registry(settings_at(work / "loader", url)),
        ModelRegistry(LocalArtifactStore(folder)),
    ):
        newest = copy_version(trained, target, MODEL).version
        for _ in range(versions - 1):
            newest = target.register(MODEL, files, manifest, first_alias=None).version
        target.set_alias(MODEL, "production", newest)  # serve the newest, as usual
    log = work / "serve.log"
    cold = [seconds_to_ready(work / f"serve-home-{i}", url, log) for i in range(repeats)]
    warm = [seconds_to_ready(work / "serve-home-0", url, log) for _ in range(repeats)]
    local = [seconds_to_ready(work / "local-home", str(folder), log) for _ in range(repeats)]
    reads_cold = [registry_reads(settings_at(work / f"reads-{i}", url)) for i in range(repeats)]
    reads_warm = [registry_reads(settings_at(work / "reads-0", url)) for _ in range(repeats)]
    reads_local = [registry_reads(settings_at(work / "reads-local", str(folder)))]
    print(f"start-up over {versions} versions of {MODEL}: best / median of {repeats}")
    print("  tabops serve, launch to /readyz 200 (imports included):")
    rows = (("S3, cold (empty cache)", cold), ("S3, warm (same cache)", warm))
    for label, seconds in (*rows, ("local folder", local)):
        print(f"    {label:<26} {min(seconds):6.2f} s / {statistics.median(seconds):6.2f} s")
    print("  the registry reads of a start, in process (no imports, no model loading):")
    rows = (("S3, cold (empty cache)", reads_cold), ("S3, warm (same cache)", reads_warm))
    for label, seconds in (*rows, ("local folder", reads_local)):
        print(f"    {label:<26} {min(seconds):6.3f} s / {statistics.median(seconds):6.3f} s")


def train_large(work: Path, rows: int) -> Path:
    """A home holding a random forest of ~100 MB, trained by ``tabops train``."""
    features, target = make_classification(
        n_samples=rows, n_features=30, n_informative=8, flip_y=0.3, random_state=0
    )
    table = pd.DataFrame(features, columns=[f"f{i:02d}" for i in range(30)])
    table["target"] = target
    folder = work / "large"
    folder.mkdir()
    table.to_csv(folder / "table.csv", index=False)
    project = folder / "tabops.yaml"
    home = work / "large-home"
    env = {**environment(home), "NO_COLOR": "1"}
    log = folder / "train.log"
    init = [TABOPS, "init", str(folder / "table.csv"), "--target", "target"]
    if run_logged([*init, "--name", LARGE_MODEL, "-o", str(project)], log, env) != 0:
        raise RuntimeError(f"tabops init failed: {last_line(log)}")
    document = yaml.safe_load(project.read_text())
    document["train"] = LARGE_TRAIN
    document["gates"] = {}
    project.write_text(yaml.safe_dump(document, sort_keys=False))
    started = time.perf_counter()
    if run_logged([TABOPS, "train", "-p", str(project)], log, env, timeout=3600) != 0:
        raise RuntimeError(f"tabops train failed: {last_line(log)}")
    print(f"  trained {LARGE_MODEL} in {time.perf_counter() - started:.0f} s")
    return home


def bench_transfer(work: Path, rows: int, repeats: int) -> None:
    from tabops.registry import LocalArtifactStore, ModelRegistry, open_registry
    from tabops.registry.transfer import copy_version

    print(f"push and pull of a random forest trained on {rows:,} noisy rows")
    source = ModelRegistry(LocalArtifactStore(train_large(work, rows) / "registry"))
    manifest = source.get_version(LARGE_MODEL, 1).manifest
    sizes = {file: len(source.read_file(LARGE_MODEL, 1, file)) for file in manifest.files}
    total = sum(sizes.values())
    print(f"  version: {total / 1e6:.1f} MB in {len(sizes)} files; largest:")
    for file, size in sorted(sizes.items(), key=lambda item: -item[1])[:3]:
        print(f"    {file:<24} {size / 1e6:8.1f} MB")
    push: list[float] = []
    pull: list[float] = []
    for attempt in range(repeats):
        url = f"s3://{BUCKET}/large-{attempt}"
        bucket = open_registry(settings_at(work / f"push-home-{attempt}", url))
        started = time.perf_counter()
        copy_version(source, bucket, LARGE_MODEL)
        push.append(time.perf_counter() - started)
        fresh = open_registry(settings_at(work / f"pull-home-{attempt}", url))
        target = ModelRegistry(LocalArtifactStore(work / f"pulled-{attempt}"))
        started = time.perf_counter()
        copy_version(fresh, target, LARGE_MODEL)
        pull.append(time.perf_counter() - started)
    put, get = raw_transfer(total, repeats)
    rows = (
        ("push (local -> S3)", push),
        ("pull (S3 -> local)", pull),
        ("boto3 put, one object", put),
        ("boto3 get, one object", get),
    )
    print(f"  MB/s, best / median of {repeats} (boto3 alone: this server's ceiling, same bytes)")
    for label, seconds in rows:
        best, median = total / 1e6 / min(seconds), total / 1e6 / statistics.median(seconds)
        print(f"    {label:<24} {best:7.1f} / {median:7.1f}  ({min(seconds):.2f} s best)")


def raw_transfer(size: int, repeats: int) -> tuple[list[float], list[float]]:
    """Seconds of boto3 alone putting and getting one object of ``size`` bytes (8 MiB parts,
    8 threads): what the server itself allows."""
    import io

    import boto3
    from boto3.s3.transfer import TransferConfig

    client = boto3.session.Session().client("s3")
    config = TransferConfig(multipart_chunksize=8 << 20, max_concurrency=8)
    data = os.urandom(size)
    put: list[float] = []
    get: list[float] = []
    for attempt in range(repeats):
        key = f"raw/{attempt}"
        started = time.perf_counter()
        client.upload_fileobj(io.BytesIO(data), BUCKET, key, Config=config)
        put.append(time.perf_counter() - started)
        started = time.perf_counter()
        client.download_fileobj(BUCKET, key, io.BytesIO(), Config=config)
        get.append(time.perf_counter() - started)
    return put, get


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="tabops-registry-s3-") as temp, moto_server() as url:
        os.environ.update(
            {**DUMMY_KEYS, "AWS_ENDPOINT_URL": url, "AWS_DEFAULT_REGION": "us-east-1"}
        )
        from tabops.registry.s3 import create_bucket

        create_bucket(BUCKET)
        work = Path(temp)
        load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
        print(
            f"moto_server at {url}; python {sys.version.split()[0]}, {os.cpu_count()} cores, "
            f"load average {load} (other work on the machine slows every number here)"
        )
        if not args.skip_startup:
            bench_startup(work, args.versions, args.repeats)
        if not args.skip_transfer:
            bench_transfer(work, args.rows, args.repeats)


if __name__ == "__main__":
    main()
