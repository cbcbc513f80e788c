"""Loaders: the public shipping CSV exactly as published, the sales CSV, and our database tables."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from ml.data import load_orders_db, load_sales_db, load_shipping_csv, read_sales_csv, read_shipping_csv
from ml.delay.features import FEATURES
from ml.errors import InputError


def test_public_csv_loads_with_bom_and_label_one_means_late(
    public_orders: pd.DataFrame, public_header: list[str], write_public_csv: Callable[..., Path]
) -> None:
    public = public_orders.head(50)
    path = write_public_csv(public)
    assert path.read_bytes().startswith(b"\xef\xbb\xbf" + ",".join(public_header).encode() + b"\n")
    frame = load_shipping_csv(path)
    assert list(frame.columns[:1]) == ["order_id"]
    assert set(FEATURES) <= set(frame.columns)
    late = public["Reached.on.Time_Y.N"].to_numpy() == 1
    assert frame["is_late"].to_numpy(dtype=bool).tolist() == late.tolist()


def test_column_names_match_case_insensitively(
    public_orders: pd.DataFrame, write_public_csv: Callable[..., Path]
) -> None:
    public = public_orders.head(5).rename(columns={"Cost_of_the_Product": "Cost_of_the_product",
                                                       "Gender": "GENDER"})
    frame = load_shipping_csv(write_public_csv(public, bom=False))
    assert frame["cost_of_product"].astype(float).tolist() == public["Cost_of_the_product"].astype(float).tolist()


def test_bad_label_rows_are_reported_and_skipped(
    public_orders: pd.DataFrame, write_public_csv: Callable[..., Path]
) -> None:
    public = public_orders.head(4).astype({"Reached.on.Time_Y.N": object})
    public.iloc[2, public.columns.get_loc("Reached.on.Time_Y.N")] = "yes"
    public.iloc[3, public.columns.get_loc("Reached.on.Time_Y.N")] = ""
    loaded = read_shipping_csv(write_public_csv(public))
    assert len(loaded.frame) == 3
    assert loaded.frame["is_late"].isna().tolist() == [False, False, True]  # blank: not known yet
    assert [(e.row, e.field) for e in loaded.errors] == [(4, "Reached.on.Time_Y.N")]
    assert loaded.id_column == "ID"


def test_missing_label_column_is_a_clear_error(
    public_orders: pd.DataFrame, write_public_csv: Callable[..., Path]
) -> None:
    public = public_orders.head(3).drop(columns=["Reached.on.Time_Y.N"])
    with pytest.raises(InputError, match=r"Reached\.on\.Time_Y\.N"):
        read_shipping_csv(write_public_csv(public))
    assert len(read_shipping_csv(write_public_csv(public, "p.csv"), require_label=False).frame) == 3


def test_header_only_file_is_a_clear_error(tmp_path: Path, public_header: list[str]) -> None:
    path = tmp_path / "h.csv"
    path.write_text(",".join(public_header) + "\n")
    with pytest.raises(InputError, match="no data rows"):
        read_shipping_csv(path)


def test_sales_csv_public_format_with_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text(
        "date,store,item,sales\n"
        "2017-01-01,1,1,13\n"
        "2017-01-02,1,1,x\n"
        "2017/01/03,1,1,4\n"
        "2017-01-01,1,1,9\n"
        "2017-01-03,1,2.5,4\n"
        "2017-01-04,1,1,7\n"
    )
    loaded = read_sales_csv(path)
    assert loaded.frame.columns.tolist() == ["date", "store", "item", "sales"]
    assert loaded.frame["sales"].tolist() == [13.0, 7.0]
    assert str(loaded.frame["date"].dtype) == "datetime64[ns]"
    messages = {e.row or 0: str(e) for e in loaded.errors}
    assert sorted(messages) == [3, 4, 5, 6]
    assert "is not a number" in messages[3]
    assert "YYYY-MM-DD" in messages[4]
    assert "duplicate of line 2" in messages[5]
    assert "integer id" in messages[6]


def test_sales_csv_accepts_our_column_names(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("Date,Store_ID,SKU,Units\n2026-01-01,3,1001,5\n")
    frame = read_sales_csv(path).frame
    assert frame.iloc[0].tolist()[1:] == [3, 1001, 5.0]


def test_orders_loader_reads_the_orders_table(open_db: Callable[[], Any], orders: pd.DataFrame) -> None:
    with open_db() as conn:
        everything = load_orders_db(conn)
        labelled = load_orders_db(conn, labelled_only=True)
    assert len(everything) == len(orders)
    assert len(labelled) == int(orders["is_late"].notna().sum())
    assert labelled["is_late"].notna().all()
    assert set(FEATURES) <= set(everything.columns)
    assert everything["cost_of_product"].dtype == "float64"
    mine = everything.set_index("order_id").loc[orders["order_id"], "is_late"]
    assert mine.astype(object).where(mine.notna(), None).tolist() == \
        orders["is_late"].astype(object).where(orders["is_late"].notna(), None).tolist()


def test_sales_loader_reads_sales_daily(open_db: Callable[[], Any], sales: pd.DataFrame) -> None:
    with open_db() as conn:
        frame = load_sales_db(conn)
        recent = load_sales_db(conn, since=sales["date"].max().date())
    assert frame.columns.tolist() == ["date", "store", "item", "sales", "discount"]
    assert frame["discount"].between(0, 0.99).all() and (frame["discount"] > 0).any()  # planned promotions
    assert len(frame) == len(sales)
    assert frame["sales"].sum() == sales["sales"].sum()
    assert len(recent) == sales.groupby(["store", "item"]).ngroups
