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


@pytest.fixture(scope="module")
def seeded_db(database_url: str) -> str:
    """This module's fresh, migrated database (shared embedded PostgreSQL) holding the small seed."""
    from server.db import connect
    from server.seed import seed_database

    with connect(database_url) as conn:
        seed_database(conn, seed=7, scale="small")
    return database_url


@pytest.fixture
def open_db(seeded_db: str) -> Callable[[], contextlib.AbstractContextManager[Any]]:
    """What the lead passes to ``ml.cli.add_commands``: a callable yielding a sync connection."""
    from server.db import connect

    @contextlib.contextmanager
    def opener() -> Iterator[Any]:
        with connect(seeded_db) as conn:  # the server's own connection settings (dict rows, autocommit)
            yield conn

    return opener
