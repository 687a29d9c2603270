"""Online feature endpoints: the views of the store and an entity's latest features."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from tabops.errors import EntityNotFoundError, FeatureViewNotFoundError, Problem
from tabops.server.deps import FeatureStoreDep, ReadAccess
from tabops.server.schemas import ErrorResponse, FeatureViewResponse, OnlineFeaturesResponse

router = APIRouter(prefix="/v1/features", tags=["features"])
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "No such view or entity"}
}


@router.get("", response_model=list[FeatureViewResponse], summary="List feature views")
def list_views(_caller: ReadAccess, store: FeatureStoreDep) -> list[dict[str, Any]]:
    """Every view of the online store, with its features and entity count."""
    return [view.__dict__ for view in store.views()]


@router.get(
    "/{view}/{entity_id}",
    response_model=OnlineFeaturesResponse,
    responses=_NOT_FOUND,
    summary="An entity's features",
)
async def get_entity_features(
    view: str, entity_id: str, _caller: ReadAccess, store: FeatureStoreDep
) -> dict[str, Any]:
    """The latest stored features of one entity, with their event and write times."""
    row = await run_in_threadpool(store.get, view, entity_id)
    if row is None:
        if await run_in_threadpool(store.view, view) is None:
            raise FeatureViewNotFoundError(f"no feature view {view!r} in the online store")
        raise EntityNotFoundError(
            f"no features for entity {entity_id!r} in view {view!r}",
            [Problem("entity_id", f"{entity_id!r} is not in the online store")],
        )
    return {
        "view": row.view,
        "entity_id": row.entity_id,
        "features": row.values,
        "event_time": row.event_time,
        "materialized_at": row.materialized_at,
    }
