"""Faults met in production: a full disk, a locked database, ``kill -9`` during registration.

The full disk is real: ``tabops serve`` runs in a user and mount namespace of its own
(``unshare``) whose home is an 8 MB tmpfs, filled and emptied through the server's view of
it, ``/proc/<pid>/root``. The kill test runs ``tabops train`` and kills it at moments spread
across its registration step, whose length is measured first on the same disk.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from fastapi.testclient import TestClient

from conftest import HEART_CSV, copy_fast_example, wait_for
from e2e.test_serve import HOST, TABOPS, free_port, wait_until_live
from tabops.config import Settings
from tabops.database import RESERVE_BYTES
from tabops.model.predictor import Predictor
from tabops.project import PROJECT_FILE
from tabops.registry import open_registry
from tabops.server.app import create_app

MODEL = "heart-failure"
RECORDS = pd.read_csv(HEART_CSV).drop(columns=["DEATH_EVENT"]).head(5).to_dict("records")
LISTED = re.compile(rf"^ *{MODEL} +(\d+) ", re.MULTILINE)  # a row of 'tabops models list'
STORES = "uploads|job files|metadata database|job queue"
FULL = re.compile(rf"^the disk holding the ({STORES}) is full \(")
# Mounts a fresh tmpfs on $1, copies the trained home $2 into it, then becomes the server.
MOUNT_AND_SERVE = (
    'mount -t tmpfs -o size=8m tmpfs "$1" && cp -a "$2"/. "$1"/ && '
    'exec "$3" serve --host "$4" --port "$5"'
)


def call(base: str, method: str, path: str, body: Any = None, media: str | None = None):
    """(status, JSON document or raw bytes) of one request; ``body`` is JSON unless ``media``."""
    data = body if media else (json.dumps(body).encode() if body is not None else None)
    headers = {"Content-Type": media or "application/json"} if data is not None else {}
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, content, kind = response.status, response.read(), response.headers
    except urllib.error.HTTPError as exc:
        with exc:
            status, content, kind = exc.code, exc.read(), exc.headers
    is_json = kind.get("content-type", "").startswith("application/json")
    return status, json.loads(content) if is_json else content


def tabops_env(home: Path, **settings: str) -> dict[str, str]:
    """This environment without its TABOPS_ variables, then ``home`` and ``settings``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("TABOPS_")}
    env["TABOPS_HOME"] = str(home)
    return env | {f"TABOPS_{name.upper()}": value for name, value in settings.items()}


def finished(base: str, job_url: str) -> dict:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = call(base, "GET", job_url)[1]
        if job["status"] in ("succeeded", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_url} did not finish: {job}")


def fill(home: Path, leave: int = 0) -> Path:
    """Write one file in ``home`` until its disk refuses a byte, then free ``leave`` bytes."""
    filler = home / "filler"
    with filler.open("ab", buffering=0) as stream:
        try:
            while True:
                stream.write(bytes(64 * 1024))
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
    os.truncate(filler, filler.stat().st_size - leave)
    return filler


def check_registry(home: Path) -> list[int]:
    """The listed versions, each loaded and verified; no other version folder exists."""
    registry = open_registry(Settings(home=home))
    versions = registry.list_versions(MODEL)
    for number in versions:
        Predictor.load(registry, MODEL, number)  # sha256 of every file, golden rows
    folders = (home / "registry" / MODEL / "versions").iterdir()
    assert sorted(int(folder.name) for folder in folders) == versions
    assert set(registry.aliases(MODEL).values()) <= set(versions)
    return versions


@pytest.fixture
def private_tmpfs(tmp_path: Path) -> None:
    """Skip unless a tmpfs can be mounted in a user namespace without privileges."""
    if shutil.which("unshare") is None:
        pytest.skip("the unshare command (util-linux) is not installed")
    probe = tmp_path / "probe"
    probe.mkdir()
    mount = 'mount -t tmpfs -o size=1m tmpfs "$1"'
    tried = subprocess.run(
        ["unshare", "-Urm", "sh", "-c", mount, "sh", str(probe)], capture_output=True, text=True
    )
    if tried.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs in a user namespace: {tried.stderr.strip()}")


@contextmanager
def serve_on_tmpfs(seed: Path, tmp_path: Path, roots: Path) -> Iterator[tuple[str, Path]]:
    """A live server whose home is a private 8 MB tmpfs holding a copy of ``seed``.

    Yields its base URL and its home as this process can reach it.
    """
    mount, port = tmp_path / "tmpfs", free_port()
    mount.mkdir()
    env = tabops_env(mount, auth="off", project_roots=str(roots))
    arguments = [str(mount), str(seed), str(TABOPS), HOST, str(port)]
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            ["unshare", "-Urm", "sh", "-c", MOUNT_AND_SERVE, "sh", *arguments],
            env=env,
            stdout=output,
            stderr=output,
        )
        try:
            base = f"http://{HOST}:{port}"
            wait_until_live(base, process, log)
            yield base, Path(f"/proc/{process.pid}/root") / mount.relative_to("/")
        finally:
            process.terminate()
            process.wait(timeout=30)


@pytest.mark.slow
def test_full_disk_is_answered_507_fails_jobs_and_heals_when_space_returns(
    home, project_dir, tmp_path, private_tmpfs
):
    upload = pd.concat([pd.read_csv(HEART_CSV)] * 20).to_csv(index=False).encode()
    with serve_on_tmpfs(home, tmp_path, project_dir) as (base, disk):
        # A scoring job whose result does not fit: failed, and no part of it offered.
        status, accepted = call(base, "POST", f"/v1/models/{MODEL}/jobs", upload, "text/csv")
        assert status == 202, accepted
        assert finished(base, accepted["status_url"])["status"] == "succeeded"
        scored = call(base, "GET", f"/v1/jobs/{accepted['job_id']}/result")[1]
        filler = fill(disk, leave=len(upload) + len(scored) // 2)
        status, accepted = call(base, "POST", f"/v1/models/{MODEL}/jobs", upload, "text/csv")
        assert status == 202, accepted
        job = finished(base, accepted["status_url"])
        assert job["status"] == "failed"
        assert job["error"].startswith("the disk holding the job files is full"), job
        status, refused = call(base, "GET", f"/v1/jobs/{job['job_id']}/result")
        assert (status, refused["error"]["code"]) == (409, "job_not_finished")
        assert [p.name for p in (disk / "jobs" / job["job_id"]).iterdir()] == ["input.csv"]

        # A training job whose registration meets a full disk: failed, nothing registered.
        status, accepted = call(base, "POST", "/v1/train", {"project": str(project_dir)})
        assert status == 202, accepted
        while call(base, "GET", accepted["status_url"])[1]["status"] == "queued":
            time.sleep(0.05)
        fill(disk)
        job = finished(base, accepted["status_url"])
        assert job["status"] == "failed"
        assert job["error"].startswith("the disk holding the model registry is full"), job

        # Recording that failure may have freed a few pages of the database's reserve.
        fill(disk)
        for path, body, media in [
            (f"/v1/models/{MODEL}/jobs", upload, "text/csv"),
            (f"/v1/models/{MODEL}/jobs", {"records": RECORDS}, None),
            ("/v1/train", {"project": str(project_dir)}, None),
        ]:
            status, refused = call(base, "POST", path, body, media)
            assert status == 507, refused
            assert refused["error"]["code"] == "insufficient_storage"
            assert FULL.match(refused["error"]["message"]), refused
            assert str(tmp_path) not in refused["error"]["message"]
        assert call(base, "GET", "/v1/jobs?status=running")[1] == []
        assert call(base, "GET", "/v1/jobs?status=queued")[1] == []
        assert call(base, "GET", f"/v1/models/{MODEL}")[1]["versions"] == [1]
        assert check_registry(disk) == [1]
        assert list((disk / "registry" / ".staging").iterdir()) == []

        filler.unlink()
        status, accepted = call(base, "POST", f"/v1/models/{MODEL}/jobs", upload, "text/csv")
        assert status == 202, accepted
        assert finished(base, accepted["status_url"])["status"] == "succeeded"
        assert call(base, "GET", f"/v1/jobs/{accepted['job_id']}/result")[1] == scored
        status, accepted = call(base, "POST", "/v1/train", {"project": str(project_dir)})
        assert status == 202, accepted
        assert finished(base, accepted["status_url"])["result"]["version"] == 2
        assert check_registry(disk) == [1, 2]
        assert (disk / "tabops.db-reserve").stat().st_size == RESERVE_BYTES


def test_locked_database_is_answered_503_database_busy_until_released(home, monkeypatch):
    monkeypatch.setenv("TABOPS_DATABASE__BUSY_TIMEOUT_SECONDS", "0.2")
    settings = Settings(home=home, security={"auth": "off"})
    url = f"/v1/models/{MODEL}/jobs"
    with TestClient(create_app(settings)) as client:
        first = client.post(url, json={"records": RECORDS}).json()
        assert wait_for(client, first["status_url"])["status"] == "succeeded"
        with closing(sqlite3.connect(home / "tabops.db", isolation_level=None)) as holder:
            holder.execute("BEGIN EXCLUSIVE")
            refused = client.post(url, json={"records": RECORDS})
            # Readers are not kept waiting by a writer (WAL).
            assert client.get(first["status_url"]).status_code == 200
            holder.execute("ROLLBACK")
        accepted = client.post(url, json={"records": RECORDS})
        assert accepted.status_code == 202, accepted.json()
        assert wait_for(client, accepted.json()["status_url"])["status"] == "succeeded"
    assert refused.status_code == 503
    assert refused.headers["Retry-After"].isdigit()
    assert refused.json()["error"] == {
        "code": "database_busy",
        "message": "the metadata database stayed locked by another writer for 0.2 s; retry shortly",
        "details": [],
    }
    # The refused job left no files behind.
    jobs = {first["job_id"], accepted.json()["job_id"]}
    assert {folder.name for folder in (home / "jobs").iterdir()} == jobs


KILLS = 6
LANES = 2  # independent homes trained side by side, to keep the test short


def time_registration(home: Path, scratch: Path) -> float:
    """Seconds a registration like the kill test's takes on this disk: publish, then promote.

    Measured in this process on a copy of ``home``'s first version, not in a training run,
    which would cost as much as one more kill.
    """
    source = open_registry(Settings(home=home))
    version = source.get_version(MODEL, 1)
    files = {file: source.read_file(MODEL, 1, file) for file in version.manifest.files}
    registry = open_registry(Settings(home=scratch))
    registry.register(MODEL, files, version.manifest)  # the first one creates the folders
    started = time.monotonic()
    number = registry.register(MODEL, files, version.manifest).version
    registry.set_alias(MODEL, "production", number)
    return time.monotonic() - started


def train(home: Path, project: Path, kill_after: float | None = None) -> int:
    """Run ``tabops train --promote production``; its exit code.

    With ``kill_after``, the process gets SIGKILL that many seconds after its registration
    is first seen (a new staging folder or version folder).
    """
    staging = home / "registry" / ".staging"
    versions = home / "registry" / MODEL / "versions"
    before = set(os.listdir(staging)) | set(os.listdir(versions))
    command = [str(TABOPS), "train", "-p", str(project), "--promote", "production"]
    process = subprocess.Popen(command, env=tabops_env(home), stdout=subprocess.DEVNULL)
    while kill_after is not None and process.poll() is None:
        if not set(os.listdir(staging)) | set(os.listdir(versions)) <= before:
            time.sleep(kill_after)
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.0002)
    return process.wait()


def kill_during_registrations(
    home: Path, project: Path, fractions: list[float], scratch: Path
) -> list[tuple[int, bool]]:
    """Kill one training per fraction of the registration's length, checking after each.

    Returns:
        Each kill's exit code, and whether its version was published all the same.
    """
    seconds = time_registration(home, scratch)
    models_list = [str(TABOPS), "models", "list"]
    outcomes, versions = [], check_registry(home)
    for fraction in fractions:
        code = train(home, project, kill_after=fraction * seconds)
        listed_before, versions = versions, check_registry(home)
        outcomes.append((code, len(versions) > len(listed_before)))
        listed = subprocess.run(models_list, env=tabops_env(home), capture_output=True, text=True)
        assert listed.returncode == 0, listed.stderr
        assert [int(number) for number in LISTED.findall(listed.stdout)] == versions
    assert train(home, project) == 0
    after = check_registry(home)
    assert after == [*versions, max(versions) + 1]
    assert open_registry(Settings(home=home)).aliases(MODEL)["production"] == after[-1]
    return outcomes


@pytest.mark.slow
def test_kill_9_during_registration_never_leaves_a_broken_version(trained_home, tmp_path):
    lanes = []
    for lane in range(LANES):
        home = tmp_path / f"home-{lane}"
        shutil.copytree(trained_home, home)
        project = copy_fast_example(tmp_path / f"project-{lane}")
        # One candidate, one setting: each run reaches registration sooner.
        document = yaml.safe_load((project / PROJECT_FILE).read_text())
        document["train"].update(candidates=["logistic_regression"], search_settings=1)
        (project / PROJECT_FILE).write_text(yaml.safe_dump(document, sort_keys=False))
        # Up to twice the registration's length, so that some kills land after it.
        fractions = [2 * index / (KILLS - 1) for index in range(lane, KILLS, LANES)]
        lanes.append((home, project, fractions, tmp_path / f"scratch-{lane}"))
    with ThreadPoolExecutor(LANES) as pool:
        running = [pool.submit(kill_during_registrations, *lane) for lane in lanes]
        outcomes = [outcome for future in running for outcome in future.result()]
    # Every kill found the process alive: it prints its report after registering.
    assert [code for code, _ in outcomes] == [-signal.SIGKILL] * KILLS
    published = sum(published for _, published in outcomes)
    print(f"{KILLS} kills: {KILLS - published} before the version was published, {published} after")
