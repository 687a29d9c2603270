"""The browser-test fixtures (``e2e/ui_browser.py``) and the trained loans home for this tier."""

from e2e.ui_browser import chromium, live_ui, page, shared_ui  # noqa: F401 - fixtures, used by name
from loans_data import loans_home, loans_trained  # noqa: F401 - fixtures, used by name
