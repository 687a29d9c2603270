"""Job records, recovery and queues on the real backends: SQLite, PostgreSQL and Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import psutil
import pytest

from conftest import HEART_CSV, make_registry
from tabops.config import Settings
from tabops.database import create_database_engine
from tabops.errors import DatabaseError, JobNotFoundError
from tabops.jobs import Job, JobService, JobStore
from tabops.jobs.run import is_owner_gone, process_owner
from tabops.serving.core import ServingCore
from tabops.serving.deployment import Deployment

TABOPS = Path(sys.executable).parent / "tabops"
MODEL = "heart-failure"


@pytest.fixture
def store(database_url) -> Iterator[JobStore]:
    job_store = JobStore(create_database_engine(database_url))
    yield job_store
    job_store.engine.dispose()


def records(count: int = 5) -> list[dict]:
    frame = pd.read_csv(HEART_CSV).drop(columns=["DEATH_EVENT"])
    return frame.head(count).to_dict("records")


@pytest.fixture
def services() -> Iterator[list[JobService]]:
    """Job services a test opens, closed at its end."""
    opened: list[JobService] = []
    yield opened
    for service in opened:
        service.close()


def service_for(settings: Settings, opened: list[JobService]) -> JobService:
    core = ServingCore(Deployment(make_registry(settings.home), None, 0.0))
    service = JobService.from_settings(settings, core)
    opened.append(service)
    return service


def wait_for(service: JobService, job_id: str, timeout: float = 60.0) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = service.get(job_id)
        if job.is_finished:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} is still {service.get(job_id).status}")


def dead_owner() -> str:
    """The owner string of a process of this host that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    created = psutil.Process(child.pid).create_time()
    child.kill()
    child.wait()
    return f"{os.uname().nodename}:{child.pid}:{created:.3f}"


def test_only_one_worker_can_claim_a_job_and_only_it_can_finish_it(store):
    job = Job.new("score", model=MODEL, version=1, input_format="json")
    store.add(job)
    claimed = store.claim(job.id, "host:1:1.000")
    assert claimed is not None
    assert claimed.status == "running"
    assert claimed.attempts == 1
    assert claimed.started is not None
    assert claimed.started.tzinfo is not None
    assert store.claim(job.id, "host:2:1.000") is None
    assert not store.report(job.id, "host:2:1.000", 0.5)
    assert store.report(job.id, "host:1:1.000", 0.5)
    assert store.get(job.id).progress == 0.5
    assert not store.finish(job.id, "host:2:1.000", result={"rows": 1})
    assert store.finish(job.id, "host:1:1.000", result={"rows": 5})
    assert not store.finish(job.id, "host:1:1.000", result={"rows": 6})
    finished = store.get(job.id)
    assert finished.status == "succeeded"
    assert finished.result == {"rows": 5}
    assert finished.progress == 1.0
    assert store.claim(job.id, "host:3:1.000") is None


def test_a_released_job_is_queued_again_and_counts_a_second_attempt(store):
    job = Job.new("train", params={"project": "/p"})
    store.add(job)
    store.claim(job.id, "a")
    assert store.running()[0][:2] == (job.id, "a")
    assert not store.release(job.id, "b")
    assert store.release(job.id, "a")
    assert store.queued_ids() == [job.id]
    assert store.claim(job.id, "b").attempts == 2
    assert store.finish(job.id, "b", result=None, error="it broke")
    failed = store.get(job.id)
    assert (failed.status, failed.error) == ("failed", "it broke")
    assert store.count("failed") == 1
    assert [j.id for j in store.recent("failed")] == [job.id]


def test_an_unknown_job_is_a_named_error(store):
    with pytest.raises(JobNotFoundError, match="'missing'"):
        store.get("missing")


def test_owners_are_told_apart_by_pid_and_start_time():
    assert not is_owner_gone(process_owner())
    assert is_owner_gone(dead_owner())
    host, pid, created = process_owner().split(":")
    assert is_owner_gone(f"{host}:{pid}:{float(created) - 100:.3f}")  # a reused pid
    assert not is_owner_gone(f"elsewhere:{pid}:{created}")  # another host: only the lease tells


def test_a_job_whose_worker_died_is_re_run_at_start_up(home, services):
    settings = Settings(home=home, job_workers=1)
    service = service_for(settings, services)
    job = service.submit_records(service.queue.runner.deployment.get(MODEL), records())
    service.store.claim(job.id, dead_owner())  # as if a killed process had taken it
    service.queue.start(workers=1)
    finished = wait_for(service, job.id)
    assert finished.status == "succeeded"
    assert finished.attempts == 2
    assert finished.result == {"rows": 5, "positives": finished.result["positives"]}


def test_a_job_of_a_silent_worker_elsewhere_is_re_queued_after_its_lease(home, services):
    settings = Settings(home=home, job_lease_seconds=0.2)
    service = service_for(settings, services)
    job = service.submit_records(service.queue.runner.deployment.get(MODEL), records())
    service.store.claim(job.id, "another-host:123:1.000")
    service.queue.release_stale()
    assert service.get(job.id).status == "running"  # the lease has not lapsed yet
    time.sleep(0.3)
    service.queue.release_stale()
    assert service.get(job.id).status == "queued"


def test_duplicate_messages_run_a_job_once(home, services):
    service = service_for(Settings(home=home), services)
    job = service.submit_records(service.queue.runner.deployment.get(MODEL), records())
    runner = service.queue.runner
    assert runner.run(job.id) is not None
    assert runner.run(job.id) is None
    assert service.get(job.id).attempts == 1


@pytest.mark.postgres
def test_jobs_run_with_their_records_in_postgresql(home, postgres_url, services):
    service = service_for(Settings(home=home, database_url=postgres_url), services)
    job = service.submit_records(service.queue.runner.deployment.get(MODEL), records(3))
    service.queue.start(workers=1)
    finished = wait_for(service, job.id)
    assert finished.status == "succeeded"
    ids = [p["prediction_id"] for p in service.predictions(finished)]
    assert [prediction_id[-8:] for prediction_id in ids] == ["00000000", "00000001", "00000002"]
    assert len({prediction_id[:24] for prediction_id in ids}) == 1


def test_jobs_run_on_a_redis_queue(home, redis_url, services):
    service = service_for(Settings(home=home, queue_url=redis_url), services)
    assert type(service.queue.huey).__name__ == "RedisHuey"
    job = service.submit_records(service.queue.runner.deployment.get(MODEL), records(4))
    service.queue.start(workers=1)
    finished = wait_for(service, job.id)
    assert finished.status == "succeeded"
    assert finished.result["rows"] == 4


def test_an_unusable_database_or_queue_url_is_a_clear_error(tmp_path, services):
    with pytest.raises(DatabaseError, match="not a database URL"):
        create_database_engine("not a url")
    with pytest.raises(DatabaseError, match="cannot open the metadata database"):
        create_database_engine("postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(ValueError, match="redis://"):
        service_for(Settings(home=tmp_path, queue_url="amqp://127.0.0.1"), services)


@pytest.fixture
def worker_process(home: Path, tmp_path: Path) -> Iterator[subprocess.Popen]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("TABOPS_")}
    env["TABOPS_HOME"] = str(home)
    log = (tmp_path / "worker.log").open("wb")
    process = subprocess.Popen(
        [str(TABOPS), "worker", "--threads", "1"], env=env, stdout=log, stderr=log
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
        log.close()


@pytest.mark.slow
def test_tabops_worker_runs_jobs_queued_by_another_process(
    home, worker_process, tmp_path, services
):
    service = service_for(Settings(home=home, job_workers=0), services)
    job = service.submit_records(service.queue.runner.deployment.get(MODEL), records(7))
    finished = wait_for(service, job.id, timeout=60)
    assert finished.status == "succeeded"
    assert finished.worker is not None
    assert finished.worker.split(":")[1] == str(worker_process.pid)
    worker_process.send_signal(signal.SIGINT)
    assert worker_process.wait(timeout=30) == 0


def test_tabops_jobs_list_and_show(home, services, monkeypatch):
    from typer.testing import CliRunner

    from tabops.cli.main import app
    from tabops.config import get_settings

    service = service_for(Settings(home=home), services)
    job = service.submit_records(service.queue.runner.deployment.get(MODEL), records(2))
    monkeypatch.setenv("TABOPS_HOME", str(home))
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    try:
        listed = CliRunner().invoke(app, ["jobs", "list"])
        shown = CliRunner().invoke(app, ["jobs", "show", job.id])
        missing = CliRunner().invoke(app, ["jobs", "show", "nope"])
    finally:
        get_settings.cache_clear()
    assert listed.exit_code == 0, listed.output
    assert job.id in listed.output
    assert "queued" in listed.output
    assert shown.exit_code == 0, shown.output
    assert f'"job_id": "{job.id}"' in shown.output
    assert missing.exit_code == 1
    assert "no job with id 'nope'" in missing.output
