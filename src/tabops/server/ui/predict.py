"""Pages of the web UI (predict)."""

from fastapi import APIRouter

router = APIRouter()
