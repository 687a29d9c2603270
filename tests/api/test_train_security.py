"""POST /v1/train reads only under the project roots, echoes no file, and promotes only on request.

Every refusal is checked through the real app: the status, the error code, the field the
answer names, and that no line of the file the request pointed at comes back.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from conftest import HEART_CSV, copy_fast_example, wait_for
from tabops.config import Settings
from tabops.server.app import create_app

SECRET = "db_password: hunter2-top-secret"
NOT_ALLOWED = {
    "code": "path_not_allowed",
    "message": "project is outside the project roots",
    "details": [{"field": "project", "problem": "outside the project roots"}],
}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The one folder the app may train from, holding a project 'fresh' of a new model."""
    folder = tmp_path / "projects"
    folder.mkdir()
    project = copy_fast_example(folder / "fresh")
    path = project / "tabops.yaml"
    document = yaml.safe_load(path.read_text())
    document["name"] = "fresh-model"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return folder


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the root holding files nobody may train from."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.yaml").write_text(f"{SECRET}\nname: leaked\n")
    (folder / "secret.csv").write_text(f"a,b\n{SECRET},1\n")
    return folder


@pytest.fixture
def idle(home: Path, root: Path) -> Iterator[TestClient]:
    """An app that takes training jobs from ``root`` but runs none."""
    settings = Settings(home=home, job_workers=0, project_roots=[root])
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def worker(home: Path, root: Path) -> Iterator[TestClient]:
    """An app that trains from ``root`` on its own job thread."""
    settings = Settings(home=home, job_workers=1, project_roots=[root])
    with TestClient(create_app(settings)) as client:
        yield client


def assert_hides(response, *files: Path) -> None:
    """No non-empty line of any of ``files`` appears in the answer."""
    for file in files:
        try:
            lines = file.read_text(errors="replace").splitlines()
        except OSError:
            continue  # unreadable here (e.g. /etc/shadow): nothing to compare
        for line in filter(None, (line.strip() for line in lines)):
            assert line not in response.text, f"{line!r} of {file} is echoed"


@pytest.mark.parametrize(
    "path",
    ["/etc/passwd", "/etc/shadow", "/etc", "/nonexistent/tabops.yaml", "outside/secret.yaml"],
)
def test_a_project_outside_the_roots_is_refused_without_telling_what_it_holds(
    idle, tmp_path, outside, path
):
    target = tmp_path / path if not path.startswith("/") else Path(path)
    response = idle.post("/v1/train", json={"project": str(target)})
    assert response.status_code == 403, response.text
    # The same answer whether the file exists or not, and none of its text.
    assert response.json() == {"error": NOT_ALLOWED}
    assert "www-authenticate" not in response.headers
    assert_hides(response, target, outside / "secret.yaml")
    assert idle.get("/v1/jobs").json() == []


def test_a_symlink_inside_a_root_cannot_lead_outside(idle, root, outside):
    (root / "link.yaml").symlink_to(outside / "secret.yaml")
    (root / "folder-link").symlink_to(outside, target_is_directory=True)
    trap = root / "trap"
    trap.mkdir()
    (trap / "tabops.yaml").symlink_to(outside / "secret.yaml")
    for path in (root / "link.yaml", root / "folder-link" / "secret.yaml", trap):
        response = idle.post("/v1/train", json={"project": str(path)})
        assert response.status_code == 403, (path, response.text)
        assert response.json() == {"error": NOT_ALLOWED}
        assert_hides(response, outside / "secret.yaml")


@pytest.mark.parametrize(
    "path",
    [
        "../outside/secret.yaml",
        "fresh/../../outside/secret.yaml",
        "{root}/../outside/secret.yaml",
        "{root}/fresh/../../../../../../etc/passwd",
    ],
)
def test_dot_dot_cannot_leave_a_root(idle, root, outside, path):
    response = idle.post("/v1/train", json={"project": path.format(root=root)})
    assert response.status_code == 403, response.text
    assert response.json() == {"error": NOT_ALLOWED}
    assert_hides(response, outside / "secret.yaml", Path("/etc/passwd"))


@pytest.mark.parametrize("field", ["project", "data"])
@pytest.mark.parametrize("value", ["fresh\x00/tabops.yaml", "fresh\n", "fresh\x7f", "\x9b", ""])
def test_a_control_character_in_a_path_is_a_422_naming_the_field(idle, root, field, value):
    body = {"project": str(root / "fresh"), field: value}
    response = idle.post("/v1/train", json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert [detail["field"] for detail in error["details"]] == [field]
    assert idle.get("/v1/jobs").json() == []


def test_the_schema_documents_which_paths_are_refused(idle):
    schema = idle.get("/openapi.json").json()["components"]["schemas"]["TrainRequest"]
    project = schema["properties"]["project"]
    assert project["pattern"] == r"^[^\x00-\x1f\x7f-\x9f]+$"
    assert project["minLength"] == 1


def test_a_job_upload_and_the_registry_cannot_be_trained_on(home, tmp_path, root):
    # The root holds tabops' own home: the home stays out of bounds all the same.
    settings = Settings(home=home, job_workers=0, project_roots=[tmp_path])
    with TestClient(create_app(settings)) as client:
        upload = client.post(
            "/v1/models/heart-failure/jobs",
            content=HEART_CSV.read_bytes(),
            headers={"content-type": "text/csv"},
        )
        assert upload.status_code == 202, upload.text
        (stored,) = (home / "jobs").rglob("input.csv")
        registry_file = next((home / "registry").rglob("manifest.json"))
        for data in (stored, registry_file, home / "jobs"):
            response = client.post(
                "/v1/train", json={"project": str(root / "fresh"), "data": str(data)}
            )
            assert response.status_code == 403, response.text
            error = response.json()["error"]
            assert error["code"] == "path_not_allowed"
            assert [detail["field"] for detail in error["details"]] == ["data"]
        (home / "project.yaml").write_text((root / "fresh" / "tabops.yaml").read_text())
        response = client.post("/v1/train", json={"project": str(home / "project.yaml")})
        assert response.status_code == 403, response.text
        assert response.json()["error"]["details"][0]["field"] == "project"
        jobs = client.get("/v1/jobs").json()
    assert [job["kind"] for job in jobs] == ["score"]


@pytest.mark.parametrize("table", ["/etc/passwd", "../../outside/secret.csv"])
def test_a_table_the_project_names_outside_the_roots_is_refused(idle, root, outside, table):
    path = root / "fresh" / "tabops.yaml"
    document = yaml.safe_load(path.read_text())
    document["data"] = table
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    response = idle.post("/v1/train", json={"project": str(path)})
    assert response.status_code == 403, response.text
    assert response.json()["error"]["details"] == [
        {"field": "data", "problem": "outside the project roots"}
    ]
    assert_hides(response, Path("/etc/passwd"), outside / "secret.csv")


def test_a_data_override_outside_the_roots_is_refused(idle, root, outside):
    body = {"project": str(root / "fresh"), "data": str(outside / "secret.csv")}
    response = idle.post("/v1/train", json=body)
    assert response.status_code == 403, response.text
    assert response.json()["error"]["details"] == [
        {"field": "data", "problem": "outside the project roots"}
    ]
    assert_hides(response, outside / "secret.csv")


def test_without_project_roots_training_over_the_api_is_refused(home, root):
    with TestClient(create_app(Settings(home=home))) as client:
        response = client.post("/v1/train", json={"project": str(root / "fresh")})
        assert client.get("/v1/jobs").json() == []
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert error["code"] == "path_not_allowed"
    assert "TABOPS_PROJECT_ROOTS" in error["message"]
    assert error["details"] == [{"field": "project", "problem": "no project roots are configured"}]


def test_relative_paths_start_from_the_first_root_not_the_working_directory(
    home, tmp_path, root, monkeypatch
):
    elsewhere = tmp_path / "elsewhere"
    copy_fast_example(elsewhere / "other")
    monkeypatch.chdir(elsewhere)
    settings = Settings(home=home, job_workers=0, project_roots=[root, elsewhere])
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/train", json={"project": "other"})
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "invalid_project"
        assert str(root / "other") in response.json()["error"]["message"]
        body = {"project": "fresh", "data": "fresh/heart_failure_clinical_records_dataset.csv"}
        accepted = client.post("/v1/train", json=body)
        assert accepted.status_code == 202, accepted.text
        job = client.get(accepted.json()["status_url"]).json()
    assert job["kind"] == "train"
    assert job["model"] == "fresh-model"


def test_a_yaml_error_gives_its_line_and_column_but_not_the_text(idle, root):
    (root / "broken.yaml").write_text(f"name: x\n{SECRET}: [unclosed\nother: 1\n")
    response = idle.post("/v1/train", json={"project": str(root / "broken.yaml")})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_project"
    assert error["message"].endswith("is not valid YAML at line 2, column 32")
    assert error["details"] == []
    assert "hunter2" not in response.text


def test_a_file_that_is_no_mapping_is_not_a_project_file_and_is_not_quoted(idle, root):
    (root / "table.csv").write_text(f"a,b\n{SECRET.replace(':', '')},1\n")
    (root / "binary.yaml").write_bytes(b"\xff\xfe\x00hunter2")
    for name in ("table.csv", "binary.yaml"):
        response = idle.post("/v1/train", json={"project": str(root / name)})
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "invalid_project"
        assert "is not a tabops project file" in error["message"]
        assert error["details"] == []
        assert "hunter2" not in response.text


def test_a_project_file_with_many_problems_lists_twenty(idle, root):
    (root / "many.yaml").write_text(yaml.safe_dump({f"unknown_{n}": n for n in range(30)}))
    response = idle.post("/v1/train", json={"project": str(root / "many.yaml")})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert len(error["details"]) == 20
    assert "the first 20 listed" in error["message"]


@pytest.mark.parametrize(
    "name", ["heart-failure%0A", "..", "heart%2Ffailure", "he\u0430rt-failure", "Heart-Failure"]
)
def test_a_model_name_off_the_naming_rule_is_not_found(idle, name):
    for path in (f"/v1/models/{name}", f"/v1/models/{name}/versions/1/card"):
        response = idle.get(path)
        assert response.status_code == 404, (path, response.text)
        assert response.json()["error"]["code"] in ("model_not_found", "not_found")


def test_a_version_number_with_a_trailing_newline_is_not_a_version(idle):
    response = idle.get("/v1/models/heart-failure/versions/1%0A")
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "version_not_found"


@pytest.mark.slow
def test_a_first_version_trained_over_the_api_takes_no_alias(worker, root):
    response = worker.post("/v1/train", json={"project": str(root / "fresh")})
    assert response.status_code == 202, response.text
    job = wait_for(worker, response.json()["status_url"], timeout=180)
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert (result["model"], result["version"]) == ("fresh-model", 1)
    assert result["promoted"] is None
    assert result["moved"] == []
    assert result["aliases"] == {}
    assert result["alias_notes"] == [
        "no alias points at 1 yet; promote with: tabops models promote fresh-model 1"
    ]
    model = worker.get("/v1/models/fresh-model").json()
    assert model["versions"] == [1]
    assert model["aliases"] == {}
    # Not in service: nothing answers for the model until an alias points at a version.
    example = worker.get("/v1/models/heart-failure/example").json()["record"]
    predicted = worker.post("/v1/models/fresh-model/predict", json=example)
    assert predicted.status_code == 404, predicted.text
    assert predicted.json()["error"]["code"] == "version_not_found"


@pytest.mark.slow
def test_a_first_version_trained_with_promote_goes_live(worker, root):
    body = {"project": str(root / "fresh"), "promote": "production"}
    response = worker.post("/v1/train", json=body)
    assert response.status_code == 202, response.text
    job = wait_for(worker, response.json()["status_url"], timeout=180)
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert result["promoted"] == "production"
    assert result["moved"] == ["production"]
    assert result["aliases"] == {"production": 1}
    assert worker.get("/v1/models/fresh-model").json()["aliases"] == {"production": 1}
    example = worker.get("/v1/models/heart-failure/example").json()["record"]
    predicted = worker.post("/v1/models/fresh-model/predict", json=example)
    assert predicted.status_code == 200, predicted.text
    assert predicted.json()["version"] == 1
