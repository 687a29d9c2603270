"""Pages of the web UI (models)."""

from fastapi import APIRouter

router = APIRouter()
