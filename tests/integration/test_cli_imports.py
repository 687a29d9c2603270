"""The command line imports what a command needs when it runs, not when it starts.

Each check runs a fresh interpreter and lists the heavy libraries it ended up importing:
``tabops --help`` and ``tabops models list`` need none of them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tabops.cli.output import PROJECT_FILE
from tabops.project import PROJECT_FILE as PROJECT_FILE_OF_PROJECTS

HEAVY = [
    "dask",
    "fastapi",
    "huey",
    "numpy",
    "onnxruntime",
    "pandas",
    "pyarrow",
    "sklearn",
    "skops",
    "sqlalchemy",
    "starlette",
    "uvicorn",
]

# Runs the command in-process, then reports its exit code and the heavy modules loaded.
PROBE = """
import json, sys
from tabops.cli.main import app
code = 0
if sys.argv[1:]:
    try:
        app(sys.argv[1:])
    except SystemExit as exit:
        code = exit.code
heavy = sorted({{name.split(".")[0] for name in sys.modules}} & set({heavy!r}))
print(json.dumps({{"code": code, "heavy": heavy}}))
"""


def heavy_modules_after(*args: str, home: Path) -> list[str]:
    """The heavy libraries a fresh interpreter imported to run ``tabops ARGS``."""
    environment = {**os.environ, "TABOPS_HOME": str(home), "COLUMNS": "120"}
    completed = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *args],
        capture_output=True,
        text=True,
        env=environment,
        check=True,
        timeout=120,
    )
    report = json.loads(completed.stdout.splitlines()[-1])
    assert report["code"] == 0, completed.stdout + completed.stderr
    heavy: list[str] = report["heavy"]
    return heavy


def test_importing_the_command_line_loads_no_heavy_library(tmp_path):
    assert heavy_modules_after(home=tmp_path) == []


@pytest.mark.parametrize("args", [["--help"], ["models", "--help"], ["train", "--help"]])
def test_help_loads_no_heavy_library(tmp_path, args):
    assert heavy_modules_after(*args, home=tmp_path) == []


def test_models_list_of_a_trained_registry_loads_no_heavy_library(home):
    assert heavy_modules_after("models", "list", home=home) == []


def test_the_command_lines_project_file_name_is_the_projects():
    assert PROJECT_FILE == PROJECT_FILE_OF_PROJECTS
