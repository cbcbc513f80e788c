"""Delay risk of the orders still open (processing, shipped or delayed), for questions like "which orders from
warehouse F are likely late?": read-only.

An order the scoring pipeline has scored keeps its stored prediction (probability, severity, factors in words). A
seeded open order without one is scored here with the loaded delay model, in memory only (asking a question
writes nothing); those scores are cached per process until the open orders change. Without a delay model only
stored predictions count, and the answer says so.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Final

import pandas as pd
from psycopg import sql

from tools.deps import current

OPEN: Final = ("processing", "shipped", "delayed")
FEATURES: Final = ("warehouse_block", "mode_of_shipment", "customer_care_calls", "customer_rating", "cost_of_product",
                   "prior_purchases", "product_importance", "gender", "discount_offered", "weight_in_gms")  # fmt: skip


@dataclass(frozen=True)
class OrderRisk:
    order_id: str
    warehouse_block: str
    mode_of_shipment: str
    order_status: str
    promised_delivery_date: str | None
    delay_probability: float
    severity: str
    factors: list[str]
    scored: str
    """``stored`` (the pipeline's prediction) or ``now`` (scored in memory for this answer)."""


_cache: dict[str, Any] = {"key": None, "rows": []}
_lock = asyncio.Lock()

_OPEN_SQL: Final = sql.SQL(
    "SELECT o.order_id, o.order_status, o.promised_delivery_date, {features}, p.delay_probability, p.severity, "
    "p.top_features FROM orders o LEFT JOIN predictions p ON p.order_id = o.order_id "
    "WHERE o.order_status = ANY(%s) ORDER BY o.order_id"
).format(features=sql.SQL(", ").join(sql.Identifier("o", f) for f in FEATURES))


def _factors(top: Any) -> list[str]:
    return [str(f.get("text") or f.get("feature")) for f in (top or []) if isinstance(f, dict)]


def _score(rows: list[dict[str, Any]], model: Any) -> list[OrderRisk]:
    frame = pd.DataFrame(rows)
    missing = frame["delay_probability"].isna()
    if model is not None and missing.any():
        scored = model.predict_frame(frame.loc[missing, list(FEATURES)].astype(object))
        frame.loc[missing, "delay_probability"] = scored["delay_probability"].to_numpy()
        frame.loc[missing, "severity"] = scored["severity"].to_numpy()
        frame.loc[missing, "top_features"] = pd.Series(list(scored["top_features"]), index=scored.index)
    out = []
    for row, was_missing in zip(frame.to_dict("records"), missing, strict=True):
        if pd.isna(row["delay_probability"]):
            continue
        out.append(OrderRisk(
            order_id=str(row["order_id"]), warehouse_block=str(row["warehouse_block"]),
            mode_of_shipment=str(row["mode_of_shipment"]), order_status=str(row["order_status"]),
            promised_delivery_date=row["promised_delivery_date"].isoformat() if row["promised_delivery_date"] else None,
            delay_probability=round(float(row["delay_probability"]), 4), severity=str(row["severity"]),
            factors=_factors(row["top_features"]), scored="now" if was_missing else "stored",
        ))  # fmt: skip
    return out


async def open_order_risks() -> list[OrderRisk]:
    """Every open order with its delay risk (stored, or scored now), cached until the open orders change."""
    deps = current()
    async with deps.pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) AS n, max(order_id) AS last, (SELECT count(*) FROM predictions) "
                                 "AS scored FROM orders WHERE order_status = ANY(%s)", (list(OPEN),))  # fmt: skip
        key_row = await cur.fetchone()
    model = deps.models.get("delay")
    key = (tuple(key_row.values()) if key_row else None, id(model))
    async with _lock:
        if _cache["key"] != key:
            async with deps.pool.connection() as conn:
                rows = await (await conn.execute(_OPEN_SQL, (list(OPEN),))).fetchall()
            _cache["rows"] = await asyncio.to_thread(_score, [dict(r) for r in rows], model) if rows else []
            _cache["key"] = key
        return list(_cache["rows"])


async def likely_late(*, warehouse_block: str | None = None, mode: str | None = None, at_least: float = 0.5,
                      limit: int = 10) -> tuple[list[OrderRisk], int]:  # fmt: skip
    """The open orders most likely late (P(late) above ``at_least``), riskiest first, and how many there are."""
    risks = [r for r in await open_order_risks() if r.delay_probability > at_least
             and (warehouse_block is None or r.warehouse_block == warehouse_block)
             and (mode is None or r.mode_of_shipment == mode)]  # fmt: skip
    risks.sort(key=lambda r: (-r.delay_probability, r.order_id))
    return risks[:limit], len(risks)
