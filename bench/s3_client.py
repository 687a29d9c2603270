"""S3 client libraries for the registry: boto3 against obstore, on a local moto server.

Usage (from the repository root):
    .venv/bin/python bench/s3_client.py [--megabytes 100] [--imports 10] [--repeats 2]
                                        [--versions 20] [--skip-clients]

Starts ``moto_server`` on 127.0.0.1 (a free port), then prints for each library:

- import time: the median wall time of ``python -c 'import LIB'`` over ``--imports`` fresh
  processes, less that of ``python -c pass``, and the cumulative time ``-X importtime``
  reports for the top-level module;
- installed size: the files of the distribution and of everything it requires (recursively);
- put and get of one object of ``--megabytes`` MB: single request against multipart /
  concurrent ranged requests (8 MiB parts, 8 at a time), best of ``--repeats``. The server
  is moto, a Python process on the same 2 cores: these numbers rank the clients' overhead,
  they are not what a real S3 endpoint gives;
- conditional writes: whether a second create-only write (If-None-Match: *) and a write with
  a stale ETag (If-Match) are refused, and a write with the current ETag accepted;
- credentials: whether a profile of an AWS config file (``AWS_PROFILE``, no key variables)
  is found. The instance-metadata endpoint is pointed at a closed loopback port, so a
  library that falls back to it fails at once without leaving the machine;
- the registry the chosen client serves (boto3): the heart-failure example is trained
  once and registered ``--versions`` times on the S3 server; then, each in a fresh process,
  ``open_registry`` + ``Predictor.load`` of the production version, and a ``tabops serve``
  until its first 200 on ``POST /predict``: from the local registry, from S3 with an empty
  cache (cold), from S3 with the cache the cold start left, and from that cache with the
  S3 server stopped (best of ``--repeats``).

Prints numbers and verdicts; never asserts.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PART = 8 * 1024 * 1024
CONCURRENCY = 8
BUCKET = "bench-s3-client"
SERVER_START_SECONDS = 30.0
DUMMY_KEYS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    port = free_port()
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + SERVER_START_SECONDS
    try:
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.1)
        yield endpoint
    finally:
        process.kill()
        process.wait()


def median_seconds(code: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def importtime_ms(module: str) -> float:
    """Cumulative microseconds ``-X importtime`` reports for ``module``, in ms."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        check=True,
    )
    for line in result.stderr.splitlines():
        fields = [field.strip() for field in line.removeprefix("import time:").split("|")]
        if len(fields) == 3 and fields[2] == module:
            return int(fields[1]) / 1000
    return float("nan")


def requirement_closure(name: str) -> set[str]:
    seen: set[str] = set()
    todo = [name]
    while todo:
        current = canonicalize_name(todo.pop())
        if current in seen:
            continue
        seen.add(current)
        for text in metadata.requires(current) or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return seen


def installed_megabytes(names: set[str]) -> float:
    total = 0
    for name in names:
        for file in metadata.distribution(name).files or []:
            path = Path(str(file.locate()))
            if path.is_file():
                total += path.stat().st_size
    return total / 1e6


def best_seconds(action: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times)


def boto3_client(endpoint: str) -> Any:
    import boto3

    return boto3.session.Session().client("s3", endpoint_url=endpoint, region_name="us-east-1")


def boto3_transfers(endpoint: str, data: bytes, repeats: int) -> dict[str, float]:
    from boto3.s3.transfer import TransferConfig

    client = boto3_client(endpoint)
    config = TransferConfig(
        multipart_threshold=PART, multipart_chunksize=PART, max_concurrency=CONCURRENCY
    )

    def get_transfer() -> bytes:
        sink = io.BytesIO()
        client.download_fileobj(BUCKET, "boto3-multi", sink, Config=config)
        return sink.getvalue()

    def get_part(start: int) -> bytes:
        part_range = f"bytes={start}-{start + PART - 1}"
        response = client.get_object(Bucket=BUCKET, Key="boto3-multi", Range=part_range)
        body: bytes = response["Body"].read()
        return body

    def get_ranged() -> bytes:
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            return b"".join(pool.map(get_part, range(0, len(data), PART)))

    return {
        "put single": best_seconds(
            lambda: client.put_object(Bucket=BUCKET, Key="boto3-single", Body=data), repeats
        ),
        "put multipart": best_seconds(
            lambda: client.upload_fileobj(io.BytesIO(data), BUCKET, "boto3-multi", Config=config),
            repeats,
        ),
        "get single": best_seconds(
            lambda: client.get_object(Bucket=BUCKET, Key="boto3-single")["Body"].read(), repeats
        ),
        "get download_fileobj": best_seconds(get_transfer, repeats),
        "get ranges": best_seconds(get_ranged, repeats),
    }


def obstore_store(endpoint: str, **options: Any) -> Any:
    from obstore.store import S3Store

    options.setdefault("client_options", {"allow_http": True})
    return S3Store(BUCKET, endpoint=endpoint, region="us-east-1", **options)


def obstore_transfers(endpoint: str, data: bytes, repeats: int) -> dict[str, float]:
    import obstore

    store = obstore_store(endpoint)
    starts = list(range(0, len(data), PART))

    def get_ranged() -> bytes:
        ends = [min(start + PART, len(data)) for start in starts]
        return b"".join(
            bytes(part) for part in obstore.get_ranges(store, "ob-multi", starts=starts, ends=ends)
        )

    return {
        "put single": best_seconds(
            lambda: obstore.put(store, "ob-single", data, use_multipart=False), repeats
        ),
        "put multipart": best_seconds(
            lambda: obstore.put(
                store, "ob-multi", io.BytesIO(data), chunk_size=PART, max_concurrency=CONCURRENCY
            ),
            repeats,
        ),
        "get single": best_seconds(lambda: obstore.get(store, "ob-single").bytes(), repeats),
        "get ranges": best_seconds(get_ranged, repeats),
    }


def boto3_conditions(endpoint: str) -> dict[str, bool]:
    from botocore.exceptions import ClientError

    client = boto3_client(endpoint)
    key = f"boto3-cas-{time.time_ns()}"

    def refused(**arguments: Any) -> bool:
        try:
            client.put_object(Bucket=BUCKET, Key=key, Body=b"x", **arguments)
        except ClientError as exc:
            return exc.response["Error"]["Code"] == "PreconditionFailed"
        return False

    etag = client.put_object(Bucket=BUCKET, Key=key, Body=b"1", IfNoneMatch="*")["ETag"]
    return {
        "create-only refused when present": refused(IfNoneMatch="*"),
        "stale If-Match refused": refused(IfMatch='"0"'),
        "current If-Match accepted": not refused(IfMatch=etag),
    }


def obstore_conditions(endpoint: str) -> dict[str, bool]:
    import obstore
    from obstore.exceptions import AlreadyExistsError, PreconditionError

    store = obstore_store(endpoint)
    key = f"ob-cas-{time.time_ns()}"

    def refused(mode: Any) -> bool:
        try:
            obstore.put(store, key, b"x", mode=mode)
        except (AlreadyExistsError, PreconditionError):
            return True
        return False

    etag = obstore.put(store, key, b"1", mode="create")["e_tag"]
    return {
        "create-only refused when present": refused("create"),
        "stale If-Match refused": refused({"e_tag": '"0"'}),
        "current If-Match accepted": not refused({"e_tag": etag}),
    }


@contextlib.contextmanager
def profile_only_environment(folder: Path) -> Iterator[None]:
    """AWS_PROFILE naming a profile of a temporary config file; no key variables."""
    config = folder / "config"
    credentials = folder / "credentials"
    config.write_text("[profile bench-profile]\nregion = us-east-1\n")
    credentials.write_text(
        "[bench-profile]\naws_access_key_id = profilekey\naws_secret_access_key = profilesecret\n"
    )
    saved = dict(os.environ)
    for name in DUMMY_KEYS:
        os.environ.pop(name, None)
    os.environ.update(
        {
            "AWS_PROFILE": "bench-profile",
            "AWS_CONFIG_FILE": str(config),
            "AWS_SHARED_CREDENTIALS_FILE": str(credentials),
            "AWS_EC2_METADATA_DISABLED": "true",
            # Where obstore looks for instance credentials: a closed port on this machine.
            "AWS_METADATA_ENDPOINT": f"http://127.0.0.1:{free_port()}",
        }
    )
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def profile_results(endpoint: str, folder: Path) -> dict[str, str]:
    import boto3
    import obstore
    from obstore.auth.boto3 import Boto3CredentialProvider

    results = {}
    with profile_only_environment(folder):
        found = boto3.session.Session().get_credentials()
        key = found.access_key if found is not None else None
        boto3_client(endpoint).list_objects_v2(Bucket=BUCKET, MaxKeys=1)
        results["boto3"] = f"found the profile's key: {key == 'profilekey'}; listing worked"
        try:
            obstore.list(
                obstore_store(endpoint, client_options={"allow_http": True, "timeout": "5s"}),
                chunk_size=1,
            ).collect()
            results["obstore native"] = "listing worked"
        except Exception as exc:  # the verdict, whatever the library raises
            results["obstore native"] = f"failed: {type(exc).__name__}: {str(exc)[:160]!r}"
        provider = Boto3CredentialProvider(boto3.session.Session())
        store = obstore_store(endpoint, credential_provider=provider)
        obstore.list(store, chunk_size=1).collect()
        results["obstore + Boto3CredentialProvider"] = "listing worked (needs boto3 installed)"
    return results


SEED_RECORD = {
    "age": 60, "anaemia": 0, "creatinine_phosphokinase": 250, "diabetes": 0,
    "ejection_fraction": 38, "high_blood_pressure": 0, "platelets": 260000,
    "serum_creatinine": 1.1, "serum_sodium": 137, "sex": 1, "smoking": 0, "time": 100,
}  # fmt: skip
SERVE_SECONDS = 120.0
LOAD_CODE = """
import sys, time
start = time.perf_counter()
from tabops.config import Settings
from tabops.model.predictor import Predictor
from tabops.registry import open_registry
imported = time.perf_counter()
registry = open_registry(Settings())
Predictor.load(registry, registry.default_model())
print(imported - start, time.perf_counter() - imported)
"""


def register_versions(home: Path, url: str, count: int) -> None:
    from tabops.config import Settings
    from tabops.model.manifest import Manifest
    from tabops.registry import open_registry

    local = open_registry(Settings(home=home))
    name = local.list_models()[0]
    version = local.resolve(name)
    root = home / "registry" / name / "versions" / str(version)
    files = {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name != "manifest.json"
    }
    manifest = Manifest.from_json(local.read_file(name, version, "manifest.json"))
    remote = open_registry(Settings(home=home.parent / "registering", registry={"url": url}))
    for _ in range(count):
        remote.register(name, files, manifest)


def time_to_first_answer(home: Path, env: dict[str, str], log: Path) -> float:
    tabops = str(Path(sys.executable).parent / "tabops")
    port = free_port()
    body = json.dumps(SEED_RECORD).encode()
    start = time.perf_counter()
    with log.open("ab") as output:
        process = subprocess.Popen(
            [tabops, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env={**env, "TABOPS_HOME": str(home)},
            stdout=output,
            stderr=output,
        )
    try:
        while time.perf_counter() - start < SERVE_SECONDS:
            if process.poll() is not None:
                raise RuntimeError(f"tabops serve exited; see {log}")
            post = urllib.request.Request(f"http://127.0.0.1:{port}/predict", data=body)
            post.add_header("Content-Type", "application/json")
            try:
                urllib.request.urlopen(post, timeout=5).close()
                return time.perf_counter() - start
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"no answer within {SERVE_SECONDS} s; see {log}")
    finally:
        process.terminate()
        process.wait(30)


def registry_startup(versions: int, repeats: int) -> None:
    import shutil

    from peers.models import tabops_environment, train_fast_example

    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        trained = train_fast_example(work)
        local_env = tabops_environment(trained)
        with moto_server() as endpoint:
            os.environ["AWS_ENDPOINT_URL"] = endpoint
            bucket = "bench-registry"
            boto3_client(endpoint).create_bucket(Bucket=bucket)
            url = f"s3://{bucket}/models"
            register_versions(trained, url, versions)
            s3_env = {**tabops_environment(trained), "TABOPS_REGISTRY__URL": url}
            homes = []
            for index in range(repeats):
                home = work / f"home-{index}"
                shutil.copytree(trained, home, ignore=shutil.ignore_patterns("registry"))
                homes.append(home)

            def load(home: Path, env: dict[str, str]) -> tuple[float, float]:
                result = subprocess.run(
                    [sys.executable, "-c", LOAD_CODE],
                    env={**env, "TABOPS_HOME": str(home)},
                    capture_output=True,
                    text=True,
                    check=True,
                )
                imported, loaded = result.stdout.split()
                return float(imported), float(loaded)

            print(f"\n## registry of {versions} versions on S3 (moto), best of {repeats}")
            print("open_registry + Predictor.load in a fresh process (s, imports apart):")
            local = min(load(trained, local_env)[1] for _ in range(repeats))
            cold = min(load(home, s3_env)[1] for home in homes)
            cached = min(load(home, s3_env)[1] for home in homes)
            print(f"  local {local:.3f}   S3 cold {cold:.3f}   S3 cached {cached:.3f}")
            for home in homes:
                shutil.rmtree(home / "cache")
            log = work / "serve.log"
            serve_local = min(time_to_first_answer(trained, local_env, log) for _ in homes)
            serve_cold = min(time_to_first_answer(home, s3_env, log) for home in homes)
            serve_cached = min(time_to_first_answer(home, s3_env, log) for home in homes)
        serve_down = min(time_to_first_answer(home, s3_env, log) for home in homes)
    print("tabops serve, start to first 200 on POST /predict (s):")
    print(
        f"  local {serve_local:.2f}   S3 cold {serve_cold:.2f}   S3 cached {serve_cached:.2f}"
        f"   S3 stopped, cached {serve_down:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=100)
    parser.add_argument("--imports", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--versions", type=int, default=20)
    parser.add_argument("--skip-clients", action="store_true", help="the registry part only")
    args = parser.parse_args()
    os.environ.update(DUMMY_KEYS)
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    if not args.skip_clients:
        compare_clients(args)
    registry_startup(args.versions, args.repeats)


def compare_clients(args: argparse.Namespace) -> None:

    print(f"## import time (median of {args.imports} processes, less `python -c pass`)")
    bare = median_seconds("pass", args.imports)
    for module in ("boto3", "obstore"):
        wall = median_seconds(f"import {module}", args.imports) - bare
        print(f"{module:8} {wall * 1000:7.0f} ms   -X importtime: {importtime_ms(module):6.0f} ms")
    boto3_client_code = (
        "import boto3; boto3.session.Session().client('s3', region_name='us-east-1')"
    )
    wall = median_seconds(boto3_client_code, args.imports) - bare
    print(f"boto3 import + first S3 client: {wall * 1000:.0f} ms")

    print("\n## installed size (the distribution and what it requires)")
    for name in ("boto3", "obstore"):
        closure = requirement_closure(name)
        print(f"{name:8} {installed_megabytes(closure):6.1f} MB  {sorted(closure)}")

    data = os.urandom(args.megabytes * 1024 * 1024)
    with moto_server() as endpoint, tempfile.TemporaryDirectory() as folder:
        boto3_client(endpoint).create_bucket(Bucket=BUCKET)
        print(f"\n## {args.megabytes} MB object, best of {args.repeats} (MB/s; moto on loopback)")
        for name, measure in (("boto3", boto3_transfers), ("obstore", obstore_transfers)):
            timings = measure(endpoint, data, args.repeats)
            row = "  ".join(
                f"{what}: {args.megabytes / seconds:6.1f}" for what, seconds in timings.items()
            )
            print(f"{name:8} {row}")

        print("\n## conditional writes honoured (moto)")
        for name, check in (("boto3", boto3_conditions), ("obstore", obstore_conditions)):
            print(f"{name:8} {check(endpoint)}")

        print("\n## AWS_PROFILE from a config file, no key variables")
        for name, verdict in profile_results(endpoint, Path(folder)).items():
            print(f"{name}: {verdict}")


if __name__ == "__main__":
    main()
