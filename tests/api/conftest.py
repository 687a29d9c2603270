"""The API tier's fixtures beyond every tier's: the trained loans home (``loans_data.py``)."""

from loans_data import loans_home, loans_trained  # noqa: F401 - fixtures, used by name
