"""The systems the serving benchmark loads, and how each is installed, started and stopped.

Rules of this folder: ``floor.py``, ``seed_fastapi.py`` and ``bentoml_service.py`` are
apps that run in a server process of their own and import no tabops code (the BentoML one
runs in its own virtualenv under ``bench/.peers/``); the other modules run in the
benchmark's process. Servers bind 127.0.0.1 only.
"""
