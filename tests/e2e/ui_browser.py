"""Browser tests of the web UI: a live server, Debian's Chromium driven by Playwright, screenshots.

Fixtures (registered for tests/e2e by its conftest):

- ``live_ui``: the base URL of a ``uvicorn`` process serving the app over the test's private
  copy of the trained home (``home``) on a free port of 127.0.0.1; keys created in ``home``
  before the fixture starts count at once.
- ``shared_ui``: the same, started once per test module over the module's own copy of the
  trained home, for tests that leave nothing behind another test could see (a server
  start costs seconds). Tests that change the home (keys, aliases) use ``live_ui``.
- ``page``: a Playwright page in a fresh browser context (no cookies), in Chromium from
  /usr/bin/chromium. Every request to a host other than 127.0.0.1 is aborted and remembered
  (``blocked_urls(page)``): the UI must work offline.

``tab_to(page, selector)`` moves the focus with the Tab key only; ``has_visible_focus(page)``
says whether the focused element shows an outline. ``screenshot(page, name)`` saves
``<name>.png`` under ``build/screenshots/<run id>/`` (or ``$TABOPS_SCREENSHOTS``). Without
/usr/bin/chromium the browser tests skip, saying why.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
HOST = "127.0.0.1"
STARTUP_SECONDS = 60.0  # a loaded 2-core machine starts the app in a few seconds
STOP_SECONDS = 10.0
ACTION_TIMEOUT_MS = 15_000  # Playwright's wait for one element or navigation
MAX_TABS = 60  # more focus stops than any page has before its last control
REPO = Path(__file__).resolve().parents[2]
_LOCAL_HOSTS = {HOST, "localhost"}
_RUN_ID = os.environ.get("PYTEST_XDIST_TESTRUNUID", "")[:12] or datetime.now(UTC).strftime(
    "%Y%m%dT%H%M%S"
)
_BLOCKED: dict[int, list[str]] = {}


def screenshot_folder() -> Path:
    """Where this run's screenshots go (made on first use)."""
    configured = os.environ.get("TABOPS_SCREENSHOTS")
    folder = Path(configured) if configured else REPO / "build" / "screenshots" / _RUN_ID
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def screenshot(page: Any, name: str) -> Path:
    """Save the whole page as ``<name>.png`` in the run's screenshot folder; return the path."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "page"
    path = screenshot_folder() / f"{safe}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def blocked_urls(page: Any) -> list[str]:
    """The requests of ``page`` to hosts other than this machine, which were aborted."""
    return list(_BLOCKED.get(id(page), []))


def tab_to(page: Any, selector: str, max_tabs: int = MAX_TABS) -> None:
    """Press Tab until the element ``selector`` names has the focus."""
    for _ in range(max_tabs):
        if page.evaluate("(s) => document.activeElement?.matches(s) ?? false", selector):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {selector}")


def has_visible_focus(page: Any) -> bool:
    """Whether the focused element draws an outline."""
    style = page.evaluate(
        "() => { const s = getComputedStyle(document.activeElement);"
        " return [s.outlineStyle, s.outlineWidth]; }"
    )
    return bool(style[0] != "none" and style[1] != "0px")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def _is_ready(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/readyz", timeout=5) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def start_ui_server(
    home: Path, log_folder: Path, settings: dict[str, str] | None = None
) -> tuple[str, subprocess.Popen[bytes]]:
    """Start uvicorn over ``home`` on a free port; return its base URL once it is ready.

    ``settings`` are more ``TABOPS_*`` variables for the server (``TABOPS_HOME`` is set).
    """
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("TABOPS_")}
    env.update(settings or {})
    env["TABOPS_HOME"] = str(home)
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "tabops.server.app:app_from_environment",
        "--host",
        HOST,
        "--port",
        str(port),
        "--no-access-log",
    ]
    log_folder.mkdir(parents=True, exist_ok=True)
    errors = log_folder / "uvicorn.err"
    with errors.open("wb") as stderr:
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=stderr, cwd=log_folder
        )
    base = f"http://{HOST}:{port}"
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {process.returncode}:\n{errors.read_text()}")
        if _is_ready(base):
            return base, process
        time.sleep(0.2)
    stop_ui_server(process)
    raise RuntimeError(f"uvicorn not ready after {STARTUP_SECONDS:g} s:\n{errors.read_text()}")


def stop_ui_server(process: subprocess.Popen[bytes]) -> None:
    """Stop the server (SIGTERM, then SIGKILL if it lingers)."""
    process.terminate()
    try:
        process.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_SECONDS)


@pytest.fixture
def live_ui(home: Path, tmp_path: Path) -> Iterator[str]:
    """Base URL of a live uvicorn server over the test's private copy of the trained home."""
    base, process = start_ui_server(home, tmp_path / "live-ui")
    try:
        yield base
    finally:
        stop_ui_server(process)


@pytest.fixture(scope="module")
def shared_ui(trained_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a live server shared by a module's tests, over the module's own home."""
    folder = tmp_path_factory.mktemp("shared-ui")
    shutil.copytree(trained_home, folder / "home")
    base, process = start_ui_server(folder / "home", folder / "live-ui")
    try:
        yield base
    finally:
        stop_ui_server(process)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One headless Chromium (Debian's) per test module.

    Not one per session: while Playwright's sync API runs, its event loop is the thread's
    running loop, so a later test in the same process calling ``asyncio.run`` would fail.
    """
    if not CHROMIUM.exists():
        pytest.skip(
            f"no Chromium at {CHROMIUM}: install Debian's chromium package "
            "(make test does when apt-get is usable)"
        )
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    """A page in a fresh context; requests to any host but this machine are aborted."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    browser_page = context.new_page()
    blocked = _BLOCKED.setdefault(id(browser_page), [])

    def only_local(route: Any) -> None:
        url = route.request.url
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob", "about") or parts.hostname in _LOCAL_HOSTS:
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    context.route("**/*", only_local)
    try:
        yield browser_page
    finally:
        _BLOCKED.pop(id(browser_page), None)
        context.close()
