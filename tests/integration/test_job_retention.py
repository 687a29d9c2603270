"""Job owners, retention, deletion and left-over files, on real records, files and queues."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text, update
from typer.testing import CliRunner

from integration.test_jobs import dead_owner, records, service_for
from tabops.config import Settings, get_settings
from tabops.database import create_database_engine
from tabops.errors import JobNotFinishedError, JobNotFoundError
from tabops.jobs import Job, JobService, JobStore
from tabops.jobs.files import JobFiles
from tabops.jobs.table import jobs_table

MODEL = "heart-failure"
DAY = timedelta(days=1)


@pytest.fixture
def services() -> Iterator[list[JobService]]:
    opened: list[JobService] = []
    yield opened
    for service in opened:
        service.close()


def submit(service: JobService, count: int = 3, owner: str | None = None) -> Job:
    predictor = service.queue.runner.deployment.get(MODEL)
    return service.submit_records(predictor, records(count), owner=owner)


def run(service: JobService, job: Job) -> Job:
    assert service.queue.runner.run(job.id) is not None
    return service.get(job.id)


def age(service: JobService, job: Job, days: float) -> None:
    """Move a finished job's end (and its files' times) ``days`` into the past."""
    moment = datetime.now(UTC) - timedelta(days=days)
    with service.store.engine.begin() as connection:
        connection.execute(
            update(jobs_table).where(jobs_table.c.id == job.id).values(finished=moment)
        )
    age_files(service.files.folder(job.id), days)


def age_files(folder: Path, days: float) -> None:
    stamp = time.time() - days * 86_400
    for path in [*folder.iterdir(), folder]:
        os.utime(path, (stamp, stamp))


def test_an_owner_sees_only_its_own_jobs_and_others_look_missing(home, database_url, services):
    service = service_for(Settings(home=home, database_url=database_url), services)
    alice = submit(service, owner="alice")
    bob = submit(service, owner="bob")
    anonymous = submit(service)
    assert [job.id for job in service.recent(owner="alice")] == [alice.id]
    assert [job.id for job in service.recent("queued", owner="bob")] == [bob.id]
    assert {job.id for job in service.recent()} == {alice.id, bob.id, anonymous.id}
    assert service.get(alice.id, owner="alice").owner == "alice"
    assert service.get(bob.id).owner == "bob"
    with pytest.raises(JobNotFoundError) as hidden:
        service.get(bob.id, owner="alice")
    with pytest.raises(JobNotFoundError) as missing:
        service.get("0" * 32, owner="alice")
    assert str(hidden.value) == f"no job with id {bob.id!r}"
    assert str(missing.value) == f"no job with id {'0' * 32!r}"
    with pytest.raises(JobNotFoundError):
        service.delete(bob.id, owner="alice")
    assert service.get(bob.id).status == "queued"


def test_the_worker_holding_a_job_does_not_replace_its_owner(home, services):
    service = service_for(Settings(home=home), services)
    job = run(service, submit(service, owner="alice"))
    assert job.status == "succeeded"
    assert job.owner == "alice"
    assert job.worker == service.queue.runner.owner


@pytest.mark.parametrize("job_id", ["../../etc", "0123", "A" * 32, "0" * 31 + "/", "0" * 32 + "\n"])
def test_a_malformed_id_is_not_found_and_never_becomes_a_path(home, services, job_id):
    service = service_for(Settings(home=home), services)
    with pytest.raises(JobNotFoundError, match="no job with id"):
        service.get(job_id)
    with pytest.raises(JobNotFoundError):
        service.files.folder(job_id)
    with pytest.raises(JobNotFoundError):
        service.files.result_path(job_id, "json")
    with pytest.raises(JobNotFoundError):
        service.delete(job_id)


def test_finished_jobs_past_retention_go_with_their_files_and_others_stay(home, services):
    service = service_for(Settings(home=home, job_retention_days=30), services)
    expired = run(service, submit(service))
    recent = run(service, submit(service))
    waiting = submit(service)
    age(service, expired, days=31)
    age(service, recent, days=29)
    age_files(service.files.folder(waiting.id), days=40)  # queued long ago: never removed
    size = sum(path.stat().st_size for path in service.files.folder(expired.id).iterdir())

    result = service.prune()

    assert (result.jobs, result.folders, result.bytes) == (1, 0, size)
    assert not service.files.folder(expired.id).exists()
    with pytest.raises(JobNotFoundError):
        service.get(expired.id)
    assert service.get(recent.id).status == "succeeded"
    assert service.files.result_path(recent.id, "json").is_file()
    assert service.get(waiting.id).status == "queued"
    assert service.prune(older_than_days=28).jobs == 1
    assert service.prune().jobs == 0


def test_without_retention_jobs_are_kept(home, services):
    service = service_for(Settings(home=home, job_retention_days=None), services)
    job = run(service, submit(service))
    age(service, job, days=3650)
    assert service.prune().jobs == 0
    assert service.get(job.id).status == "succeeded"
    assert service.prune(older_than_days=1).jobs == 1


def test_a_folder_no_job_claims_is_removed_once_as_old_as_the_retention(home, services):
    service = service_for(Settings(home=home, job_retention_days=7), services)
    files = service.files
    stale, young = Job.new("score").id, Job.new("score").id
    for job_id in (stale, young):
        files.write_bytes(files.input_path(job_id, "json"), b"[{}]")
    age_files(files.folder(stale), days=8)
    other = files.root / "notes"
    other.mkdir()
    age_files(other, days=8)

    result = service.prune()

    assert (result.jobs, result.folders, result.bytes) == (0, 1, 4)
    assert not files.folder(stale).exists()
    assert files.folder(young).exists()  # perhaps a submission still being written
    assert other.exists()  # not a job's folder


def test_the_server_prunes_at_start_up_and_every_hour(home, services):
    settings = Settings(home=home, job_retention_days=1, job_workers=0)
    service = service_for(settings, services)
    at_start, hourly = run(service, submit(service)), run(service, submit(service))
    age(service, at_start, days=2)

    service.queue.start(workers=0)
    with pytest.raises(JobNotFoundError):
        service.get(at_start.id)

    age(service, hourly, days=2)
    huey = service.queue.huey
    due = [task.name for task in huey.read_periodic(datetime(2030, 1, 1, 5, 0))]
    assert "tabops.prune_jobs" in due
    assert "tabops.prune_jobs" not in [
        task.name for task in huey.read_periodic(datetime(2030, 1, 1, 5, 1))
    ]
    (task,) = [
        task
        for task in huey.read_periodic(datetime(2030, 1, 1, 5, 0))
        if task.name == "tabops.prune_jobs"
    ]
    huey.execute(task)
    with pytest.raises(JobNotFoundError):
        service.get(hourly.id)


def test_a_queued_job_is_cancelled_by_deletion_and_a_running_one_is_refused(home, services):
    service = service_for(Settings(home=home), services)
    queued, running = submit(service), submit(service)
    service.store.claim(running.id, "elsewhere:1:1.000")

    service.delete(queued.id)
    with pytest.raises(JobNotFinishedError, match="is running"):
        service.delete(running.id)

    assert not service.files.folder(queued.id).exists()
    assert service.queue.runner.run(queued.id) is None  # its message finds no job to run
    assert service.queue.recover() == 0
    assert not service.files.folder(queued.id).exists()
    assert service.get(running.id).status == "running"
    assert service.files.input_path(running.id, "json").is_file()


KILLED_WRITE = """
import os, signal, sys
from pathlib import Path
from tabops import atomic
with atomic.replacing(Path(sys.argv[1])) as stream:
    stream.write(b'{"predictions": [')
    stream.flush()
    os.kill(os.getpid(), signal.SIGKILL)
"""

KILLED_SCORING = """
import os, signal, sys
from pathlib import Path
from tabops.config import Settings
from tabops.model.predictor import Predictor
from tabops.registry import LocalArtifactStore, ModelRegistry
from tabops.scoring.local import score_file
home, source, destination = map(Path, sys.argv[1:])
predictor = Predictor.load(ModelRegistry(LocalArtifactStore(Settings(home=home).registry_path)),
                           "heart-failure")
score_file(predictor, source, destination, chunk_rows=50,
           progress=lambda rows: os.kill(os.getpid(), signal.SIGKILL))
"""


def kill_while_writing(script: str, *arguments: Path) -> None:
    process = subprocess.run([sys.executable, "-c", script, *map(str, arguments)], check=False)
    assert process.returncode == -signal.SIGKILL


def temp_files(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.name.startswith("."))


def test_a_killed_write_leaves_a_temp_file_that_the_re_run_removes(home, services):
    service = service_for(Settings(home=home), services)
    job = submit(service)
    service.store.claim(job.id, dead_owner())
    result = service.files.result_path(job.id, "json")
    kill_while_writing(KILLED_WRITE, result)
    assert [name.startswith(".result.json.") for name in temp_files(result.parent)] == [True]

    service.queue.start(workers=1)
    finished = wait_until_finished(service, job.id)

    assert (finished.status, finished.attempts) == ("succeeded", 2)
    assert temp_files(result.parent) == []


def test_a_killed_file_scoring_leaves_partial_output_removed_at_start_up(
    home, services, heart_frame
):
    service = service_for(Settings(home=home, job_retention_days=None), services)
    predictor = service.queue.runner.deployment.get(MODEL)
    source = home / "upload.csv"
    heart_frame.drop(columns=["DEATH_EVENT"]).to_csv(source, index=False)
    with source.open("rb") as upload:
        job = service.submit_file(predictor, upload, "csv")
    job = run(service, job)
    result = service.files.result_path(job.id, "csv")
    scored = result.read_bytes()
    kill_while_writing(KILLED_SCORING, home, service.files.input_path(job.id, "csv"), result)
    (partial,) = temp_files(result.parent)
    assert partial.startswith(".result.csv.")
    left = (result.parent / partial).stat().st_size

    outcome = service.prune()

    assert (outcome.jobs, outcome.temp_files, outcome.bytes) == (0, 1, left)
    assert temp_files(result.parent) == []
    assert result.read_bytes() == scored  # the published result is untouched


def wait_until_finished(service: JobService, job_id: str, timeout: float = 60.0) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = service.get(job_id)
        if job.is_finished:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} is still {service.get(job_id).status}")


OLD_JOBS_TABLE = """
CREATE TABLE jobs (
    id VARCHAR(32) PRIMARY KEY, kind VARCHAR(16) NOT NULL, status VARCHAR(16) NOT NULL,
    model VARCHAR(200), version INTEGER, input_format VARCHAR(16), params JSON NOT NULL,
    progress FLOAT NOT NULL, attempts INTEGER NOT NULL, owner VARCHAR(200),
    created TIMESTAMP WITH TIME ZONE NOT NULL, started TIMESTAMP WITH TIME ZONE,
    finished TIMESTAMP WITH TIME ZONE, heartbeat TIMESTAMP WITH TIME ZONE, result JSON,
    error TEXT
)
"""


def test_a_jobs_table_from_before_owners_is_upgraded_in_place(database_url):
    job_id = Job.new("score").id
    old = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
    with old.begin() as connection:
        connection.execute(text(OLD_JOBS_TABLE))
        connection.execute(
            text(
                "INSERT INTO jobs (id, kind, status, params, progress, attempts, owner, created,"
                " heartbeat) VALUES (:id, 'score', 'running', '{}', 0.5, 1, 'host:9:1.000',"
                " :now, :now)"
            ),
            {"id": job_id, "now": datetime.now(UTC)},
        )
    old.dispose()
    engine = create_database_engine(database_url)
    try:
        store = JobStore(engine)
        JobStore(engine)  # a second process finds it done
        job = store.get(job_id)
        assert (job.owner, job.worker, job.progress) == (None, "host:9:1.000", 0.5)
        assert store.running()[0][:2] == (job_id, "host:9:1.000")
        assert store.release(job_id, "host:9:1.000")
    finally:
        engine.dispose()


@pytest.fixture
def cli_home(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("TABOPS_HOME", str(home))
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


def test_tabops_jobs_prune_reports_jobs_and_bytes_removed(cli_home, services):
    from tabops.cli.main import app

    service = service_for(Settings(home=cli_home), services)
    old, new = run(service, submit(service)), run(service, submit(service))
    age(service, old, days=10)
    size = sum(path.stat().st_size for path in service.files.folder(old.id).iterdir())

    pruned = CliRunner().invoke(app, ["jobs", "prune", "--older-than", "5"])

    assert pruned.exit_code == 0, pruned.output
    assert "removed 1 job(s)" in pruned.output
    assert f"{size / 1000:.1f} kB freed" in pruned.output
    assert not service.files.folder(old.id).exists()
    assert service.get(new.id).status == "succeeded"


def test_job_files_size_and_removal_report_bytes(tmp_path):
    files = JobFiles(tmp_path / "jobs")
    job_id = Job.new("score").id
    files.write_bytes(files.input_path(job_id, "json"), b"x" * 10)
    files.write_bytes(files.result_path(job_id, "json"), b"y" * 5)
    assert files.size(job_id) == 15
    assert files.job_ids() == [job_id]
    assert files.remove(job_id) == 15
    assert files.remove(job_id) == 0
    assert files.job_ids() == []
