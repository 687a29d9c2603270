"""The browser-test fixtures (``e2e/ui_browser.py``) for every test of this tier."""

from e2e.ui_browser import chromium, live_ui, page  # noqa: F401 - fixtures, used by name
