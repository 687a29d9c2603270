"""Schemathesis over the live server's own OpenAPI document: every answer is documented.

A ``tabops serve`` process over a trained home is fuzzed through every operation its
``/openapi.json`` lists: the document's examples, then requests generated to match it
(positive) and to break it (negative), with a derandomized Hypothesis so CI replays the
same requests. Each answer must be no 5xx, carry a status the operation documents, and
have the content type and body schema documented for that status. Training over the
API is refused: the only project root is an empty folder.

Schemathesis' pytest loader for a schema served by a fixture (``from_fixture``) fails on
pytest 9 (it sets ``Node._nodeid``), so operations are driven through its Python API:
``APIOperation.as_strategy`` under Hypothesis' ``given``.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis.checks import CheckFunction, not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from e2e.test_soak import running_server

pytestmark = pytest.mark.slow

EXAMPLES_PER_MODE = 25  # per operation, for each of the positive and negative modes
EXAMPLES_WITHOUT_MODEL = 5  # the same, on a server with no model
MIN_REQUESTS = 2_000  # over both halves of the operations
HALVES = 2  # the operations are fuzzed in halves, each by a server of its own, side by side
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
SETTINGS = hypothesis.settings(
    max_examples=EXAMPLES_PER_MODE,
    derandomize=True,  # the same requests on every run
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],  # a failure is reported as found, not shrunk
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
MODES = [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]


def finished_file_job(base: str, model: str, session: requests.Session) -> str:
    """The id of a finished CSV scoring job over real records, one of them invalid."""
    record = session.get(f"{base}/v1/models/{model}/example", timeout=30).json()["record"]
    rows = [",".join(str(value) for value in record.values())] * 3
    bad = {**record, next(iter(record)): "not-a-number"}
    table = "\n".join([",".join(record), *rows, ",".join(str(v) for v in bad.values())])
    answer = session.post(
        f"{base}/v1/models/{model}/jobs",
        data=table.encode(),
        headers={"Content-Type": "text/csv"},
        timeout=30,
    )
    assert answer.status_code == 202, answer.text
    status_url = f"{base}{answer.json()['status_url']}"
    for _ in range(600):
        job = session.get(status_url, timeout=30).json()
        if job["status"] in ("succeeded", "failed"):
            assert job["status"] == "succeeded", job
            assert job["errors_url"] is not None, job
            return str(job["job_id"])
        time.sleep(0.1)
    raise AssertionError(f"job {status_url} did not finish: {job}")


def fuzz_operation(
    operation: schemathesis.APIOperation,
    known: dict[str, str],
    session: requests.Session,
    sent: Counter[str],
    settings: hypothesis.settings,
    checks: list[CheckFunction],
) -> list[str]:
    """Send the operation's examples and generated requests; the failures found, if any.

    Path parameters drawn at random name no model, version or job, so operations with
    such parameters are also fuzzed with ``known`` ones, to reach what lies behind the
    lookup.
    """
    strategies = [
        *operation.get_strategies_from_examples(),
        *(operation.as_strategy(generation_mode=mode) for mode in MODES),
    ]
    existing = {key: value for key, value in known.items() if f"{{{key}}}" in operation.path}
    if existing:
        strategies += [
            operation.as_strategy(generation_mode=mode, path_parameters=existing) for mode in MODES
        ]
    failures = []
    for strategy in strategies:

        @settings
        @hypothesis.given(case=strategy)
        def send(case: schemathesis.Case) -> None:
            response = case.call_and_validate(session=session, checks=checks, timeout=30)
            sent[f"{operation.label} {response.status_code}"] += 1

        # Schemathesis reports failed checks as a BaseExceptionGroup; every operation's
        # failures are collected, not only the first operation's.
        try:
            send()
        except hypothesis.errors.Unsatisfiable:
            pass  # nothing to break: every value of every parameter is valid
        except (Exception, BaseExceptionGroup) as exc:
            failures.append(f"{operation.label}:\n{exc}")
    return failures


def fuzz_server(
    base: str,
    session: requests.Session,
    known: dict[str, str],
    settings: hypothesis.settings,
    checks: list[CheckFunction] = CHECKS,
    part: tuple[int, int] = (0, 1),
) -> tuple[Counter[str], list[str]]:
    """Requests sent per operation and status, and failures, over the documented operations.

    ``part`` is (which, of how many): every how-many-th operation by label, from which-th.
    """
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    everything = sorted((result.ok() for result in schema.get_all_operations()), key=label_of)
    which, count = part
    operations = everything[which::count]
    sent: Counter[str] = Counter()
    failures: list[str] = []
    # Deletions last, so that known ids are there for every other operation.
    for operation in sorted(operations, key=lambda op: op.method.upper() == "DELETE"):
        failures += fuzz_operation(operation, known, session, sent, settings, checks)
    untouched = {op.label for op in operations} - {label.rpartition(" ")[0] for label in sent}
    failures += [f"{label}: no request was sent" for label in sorted(untouched)]
    return sent, failures


def label_of(operation: Any) -> str:
    return str(operation.label)


@pytest.mark.parametrize("half", range(HALVES))
def test_every_answer_conforms_to_the_openapi_document(trained_home, tmp_path, half):
    home = shutil.copytree(trained_home, tmp_path / "home")
    with running_server(home, tmp_path) as (base, _, headers), requests.Session() as session:
        session.headers.update(headers)
        model = session.get(f"{base}/v1/models", timeout=30).json()[0]["name"]
        job_id = finished_file_job(base, model, session)
        known = {"name": model, "version": "production", "job_id": job_id}
        sent, failures = fuzz_server(base, session, known, SETTINGS, part=(half, HALVES))

    print(f"{sum(sent.values())} requests by operation and status: {sorted(sent.items())}")
    assert not failures, "\n\n".join(failures)
    assert sum(sent.values()) >= MIN_REQUESTS // HALVES, sent


def test_a_server_without_models_answers_as_documented(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    settings = hypothesis.settings(SETTINGS, max_examples=EXAMPLES_WITHOUT_MODEL)
    # Not ready is answered 503 by design (a load balancer sends no traffic there), so
    # 5xx answers are counted here rather than refused by the checks.
    checks = [check for check in CHECKS if check is not not_a_server_error]
    with running_server(home, tmp_path) as (base, _, headers), requests.Session() as session:
        session.headers.update(headers)
        sent, failures = fuzz_server(base, session, {}, settings, checks)

    assert not failures, "\n\n".join(failures)
    server_errors = {label for label in sent if int(label.rpartition(" ")[2]) >= 500}
    assert server_errors == {
        "GET /readyz 503",
        "GET /v2/health/ready 503",
        "GET /ping 503",
        "GET /health 503",
    }, sent
