"""Pages of the web UI (overview)."""

from fastapi import APIRouter

router = APIRouter()
