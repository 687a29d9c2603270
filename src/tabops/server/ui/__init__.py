"""The web pages under ``/ui``: server-rendered (Jinja2), with vendored assets only.

Each page group is a router of its own module; this package joins them under one prefix.
"""

from fastapi import APIRouter

from tabops.server.ui import batch as batch_page
from tabops.server.ui import features, models, overview, predict
from tabops.server.ui import monitoring as monitoring_page

router = APIRouter(prefix="/ui", include_in_schema=False)
router.include_router(overview.router)
router.include_router(models.router)
router.include_router(predict.router)
router.include_router(features.router)
router.include_router(monitoring_page.router)
router.include_router(batch_page.router)
