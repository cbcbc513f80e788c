"""Deterministic synthetic retail data for RIMAS (pure numpy + pandas; no database access).

``generate(seed, scale, as_of)`` returns one DataFrame per domain table, with exactly the table's columns
(in the SQL migration's order, minus DB-defaulted bookkeeping columns) and values that satisfy its CHECK
constraints. The same seed, scale and ``as_of`` always give identical frames: each table draws from its
own child of ``numpy.random.SeedSequence(seed)``, so changing one table's generation does not shift the
random numbers of another.

Column types: integers are ``int64`` (nullable ones ``Int64``); money is ``float64`` rounded to cents the
way Postgres ``numeric`` rounds (half away from zero); dates are date-only ``datetime64[ns]`` with ``NaT``
for NULL; text is pandas' default string dtype, except nullable text (``pricing_rules.category``,
``promotions.thread_id``), which is ``object`` holding ``None``; ``orders.is_late`` is the nullable
``boolean`` dtype.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.synth_catalog import make_pricing_rules, make_products, make_stores
from ml.synth_orders import make_customers, make_orders
from ml.synth_sales import make_inventory, make_sales_and_promotions

logger = logging.getLogger(__name__)

GENERATOR_NAME = "rimas.ml.synth/1"
"""Identifies this generator (and its version) in ``dataset_info.generator``."""

DEFAULT_AS_OF = dt.date(2026, 10, 31)
"""Last day of sales history and the "today" of the orders unless another ``as_of`` is given."""


@dataclass(frozen=True)
class ScaleConfig:
    """Size of one generated dataset.

    ``n_days`` days of daily sales end on ``as_of`` for every (store, product); ``n_orders`` orders fall in
    the last 120 days.
    """

    n_stores: int
    n_products: int
    n_days: int
    n_customers: int
    n_orders: int


SCALES: dict[str, ScaleConfig] = {
    "small": ScaleConfig(n_stores=3, n_products=8, n_days=400, n_customers=300, n_orders=1_500),
    "demo": ScaleConfig(n_stores=10, n_products=50, n_days=1_095, n_customers=5_000, n_orders=20_000),
}
"""Named scales: ``small`` for tests, ``demo`` for the seeded service."""

TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "stores": ("store_id", "name", "city", "region", "size_sqft", "opened_on"),
    "products": ("sku", "name", "category", "unit_cost", "unit_price", "weight_g", "importance"),
    "inventory": ("store_id", "sku", "on_hand", "on_order", "lead_time_days"),
    "sales_daily": ("date", "store_id", "sku", "units", "price", "discount"),
    "customers": ("customer_id", "name", "email", "gender", "city", "segment", "prior_purchases", "rating",
                  "care_calls", "loyalty_points", "created_at"),
    "orders": ("order_id", "customer_id", "store_id", "sku", "quantity", "order_date", "promised_delivery_date",
               "ship_date", "delivery_date", "warehouse_block", "mode_of_shipment", "carrier_name",
               "tracking_id", "customer_care_calls", "customer_rating", "prior_purchases", "gender",
               "product_importance", "cost_of_product", "discount_offered", "weight_in_gms", "order_value",
               "payment_status", "order_status", "is_late"),
    "pricing_rules": ("rule_id", "scope", "category", "sku", "rule_type", "min_margin", "max_discount",
                      "valid_from", "valid_to", "active"),
    "promotions": ("idempotency_key", "store_id", "sku", "discount", "starts_on", "ends_on", "source", "actor",
                   "policy_rule", "thread_id"),
}
"""Columns of each generated frame, in load (foreign-key-safe) order."""

_STREAMS = ("stores", "products", "sales", "inventory", "customers", "orders", "pricing_rules")
"""One random stream per generating step; the position in this tuple fixes the stream (append only)."""


def table_order() -> list[str]:
    """Table names in an order that respects foreign keys (load in this order, delete in reverse)."""
    return list(TABLE_COLUMNS)


def _streams(seed: int) -> dict[str, np.random.Generator]:
    children = np.random.SeedSequence(seed).spawn(len(_STREAMS))
    return {name: np.random.default_rng(child) for name, child in zip(_STREAMS, children, strict=True)}


def _check_args(seed: int, scale: str, as_of: dt.date) -> ScaleConfig:
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {sorted(SCALES)}, got {scale!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(as_of, dt.datetime) or not isinstance(as_of, dt.date):
        raise ValueError(f"as_of must be a datetime.date, got {as_of!r}")
    return SCALES[scale]


def generate(seed: int = 7, scale: str = "demo", as_of: dt.date = DEFAULT_AS_OF) -> dict[str, pd.DataFrame]:
    """Generate every domain table for ``scale`` (see :data:`SCALES`) with history ending on ``as_of``.

    Returns ``{table: DataFrame}`` in :func:`table_order`. Raises ``ValueError`` naming the argument on an
    unknown scale, a negative seed or an ``as_of`` that is not a date.
    """
    cfg = _check_args(seed, scale, as_of)
    rng = _streams(int(seed))
    history_start = as_of - dt.timedelta(days=cfg.n_days - 1)

    stores = make_stores(rng["stores"], cfg.n_stores, history_start)
    products = make_products(rng["products"], cfg.n_products)
    sales, promotions = make_sales_and_promotions(rng["sales"], stores, products, history_start, cfg.n_days)
    inventory = make_inventory(rng["inventory"], products, sales)
    customers = make_customers(rng["customers"], cfg.n_customers, as_of)
    orders = make_orders(rng["orders"], customers, stores, products, cfg.n_orders, as_of)
    pricing_rules = make_pricing_rules(rng["pricing_rules"], products, promotions, as_of)

    frames = {
        "stores": stores, "products": products, "inventory": inventory, "sales_daily": sales,
        "customers": customers, "orders": orders, "pricing_rules": pricing_rules, "promotions": promotions,
    }
    out: dict[str, pd.DataFrame] = {}
    for table, columns in TABLE_COLUMNS.items():
        frame = frames[table]
        if tuple(frame.columns) != columns:  # a programming error, not bad input
            raise RuntimeError(f"{table}: generated columns {list(frame.columns)} != {list(columns)}")
        out[table] = frame
    logger.info("generated %s", {k: len(v) for k, v in out.items()})
    return out

