"""The catalog questions are read against: stores, products, categories and the data's "today".

:func:`load_catalog` builds an :class:`ml.nlu.Catalog` from the ``stores`` and ``products`` tables, with ``as_of``
the latest day of recorded sales. It is cached per process and rebuilt when the data changes: every call reads the
cache key in one small query (when the data was seeded, the store and product counts, the latest sales day).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pandas as pd

from ml.nlu import Catalog
from tools.deps import current

_KEY_SQL = """
SELECT (SELECT seeded_at FROM dataset_info) AS seeded_at, (SELECT count(*) FROM stores) AS stores,
       (SELECT count(*) FROM products) AS products, (SELECT max(date) FROM sales_daily) AS as_of,
       (SELECT max(as_of) FROM dataset_info) AS dataset_as_of
"""

_cache: dict[str, Any] = {"key": None, "catalog": None}
_lock = asyncio.Lock()


async def _rows(query: str) -> list[dict[str, Any]]:
    async with current().pool.connection() as conn:
        cur = await conn.execute(query)  # constant queries: nothing from the caller reaches them
        return list(await cur.fetchall())


async def load_catalog() -> Catalog:
    """The catalog of the current data (cached until the data changes)."""
    key_row = (await _rows(_KEY_SQL))[0]
    key = tuple(key_row.values())
    if _cache["key"] == key and _cache["catalog"] is not None:
        return _cache["catalog"]
    async with _lock:
        if _cache["key"] != key or _cache["catalog"] is None:
            stores = pd.DataFrame(await _rows("SELECT store_id, name, city FROM stores ORDER BY store_id"),
                                  columns=["store_id", "name", "city"])  # fmt: skip
            products = pd.DataFrame(await _rows("SELECT sku, name, category FROM products ORDER BY sku"),
                                    columns=["sku", "name", "category"])  # fmt: skip
            as_of = key_row["as_of"] or key_row["dataset_as_of"]
            if as_of is None:
                raise LookupError("no data: the database holds no sales and no dataset record (seed it first)")
            _cache["catalog"] = Catalog.from_frames(stores, products, as_of)
            _cache["key"] = key
    return _cache["catalog"]
