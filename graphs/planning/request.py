"""The plan request (the RIMAS seed's ``CreatePlanRequest``), validated: the REST route and the graph's ``intake``
check the same model, so a request the API refuses is refused in LangGraph Studio too, naming the field.

Bounds: a horizon of 1 to 56 days and a lead time of 0 to 30 days whose sum the demand model covers (56 days); a
budget above 0 (at most 10^9); a discount in [0, 1); 1 to 200 distinct items, each with a whole, non-negative stock.
Numbers must be JSON numbers of the right kind: ``"5"`` and ``true`` are refused (``5.0`` is the integer 5, as JSON
Schema reads it). What a schema cannot say (an item listed twice, a lead time + horizon beyond the forecast) is
checked by :func:`check_request`, after the route has looked the store up.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from rag.schemas import JSON_INTEGER

MAX_COVER_DAYS = 56
"""The longest lead time + horizon a plan forecasts (the served demand model's horizon)."""


class Constraints(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lead_time_days: Annotated[int, Field(ge=0, le=30, description="Days from ordering to arrival."), JSON_INTEGER]
    budget_limit: Annotated[float, Field(gt=0, le=1e9, allow_inf_nan=False, description="Most the orders may cost.")]
    max_discount: Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False, description="Deepest discount (fraction).")]


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item_id: Annotated[int, Field(ge=1, le=2**31 - 1, description="The product's sku."), JSON_INTEGER]
    current_stock: Annotated[int, Field(ge=0, le=10**7, description="Units on hand now."), JSON_INTEGER]


class CreatePlanRequest(BaseModel):
    """A store plan request."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {
        "store_id": 1, "horizon_days": 14,
        "constraints": {"lead_time_days": 3, "budget_limit": 200000, "max_discount": 0.15},
        "items": [{"item_id": 1001, "current_stock": 120}, {"item_id": 1002, "current_stock": 30}],
    }})  # fmt: skip

    store_id: Annotated[int, Field(ge=1, le=2**31 - 1), JSON_INTEGER]
    horizon_days: Annotated[int, Field(ge=1, le=MAX_COVER_DAYS, description="Days the plan covers."), JSON_INTEGER]
    constraints: Constraints
    items: Annotated[list[Item], Field(min_length=1, max_length=200)]



def check_request(request: CreatePlanRequest) -> str | None:
    """What the schema cannot say, as ``field: problem``, or None."""
    seen: set[int] = set()
    for index, item in enumerate(request.items):
        if item.item_id in seen:
            return f"items[{index}].item_id: {item.item_id} is listed twice; list each item once"
        seen.add(item.item_id)
    cover = request.horizon_days + request.constraints.lead_time_days
    if cover > MAX_COVER_DAYS:
        return (f"horizon_days: horizon_days + constraints.lead_time_days is {cover}; the demand forecast covers at "
                f"most {MAX_COVER_DAYS} days")  # fmt: skip
    return None


def plain(request: CreatePlanRequest) -> dict[str, Any]:
    """The request as the graph's input (plain JSON)."""
    return request.model_dump(mode="json")
