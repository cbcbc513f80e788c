"""Planned promotions as forecast input: both layouts, validation with field and row, the panel calendar."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml.demand.panel import build_panel
from ml.demand.promotions import check_discounts_frame, overlay_discounts, read_discounts_csv
from ml.errors import InputError


def test_windows_and_daily_rows_mean_the_same_plan() -> None:
    windows = pd.DataFrame({"store_id": [1, 2], "sku": [7, 7], "discount": [0.15, 0.3],
                            "starts_on": ["2024-03-01", "2024-03-05"], "ends_on": ["2024-03-03", "2024-03-05"]})
    daily = check_discounts_frame(windows)
    assert daily.columns.tolist() == ["date", "store", "item", "discount"]
    assert daily["date"].dt.strftime("%m-%d").tolist() == ["03-01", "03-02", "03-03", "03-05"]
    assert daily["discount"].tolist() == [0.15, 0.15, 0.15, 0.3]
    again = check_discounts_frame(daily.rename(columns={"item": "SKU"}))
    pd.testing.assert_frame_equal(again, daily)


@pytest.mark.parametrize(
    ("frame", "field", "row", "message"),
    [
        (pd.DataFrame({"date": ["2024-01-01", "2024-01-02"], "store": [1, 1], "item": [1, 1],
                       "discount": [0.1, 1.0]}), "discount", 2, "fraction"),
        (pd.DataFrame({"date": ["2024-01-01", "soon"], "store": [1, 1], "item": [1, 1],
                       "discount": [0.1, 0.1]}), "date", 2, "not a date"),
        (pd.DataFrame({"store": [1, 1], "item": [1, 1], "discount": [0.1, 0.2],
                       "starts_on": ["2024-01-01", "2024-01-05"], "ends_on": ["2024-01-07", "2024-01-09"]}),
         "date", 2, "overlap"),
        (pd.DataFrame({"store": [1], "item": [1], "discount": [0.1], "starts_on": ["2024-01-05"],
                       "ends_on": ["2024-01-01"]}), "ends_on", 1, "before starts_on"),
        (pd.DataFrame({"store": [1], "item": [1], "discount": [0.1]}), "date", None, "missing column"),
        (pd.DataFrame({"store": [1], "item": [1], "discount": [0.1], "starts_on": ["2024-01-05"]}),
         "ends_on", None, "missing column"),
    ],
)
def test_bad_plans_name_the_field_and_row(frame: pd.DataFrame, field: str, row: int | None, message: str) -> None:
    with pytest.raises(InputError, match=message) as info:
        check_discounts_frame(frame)
    assert info.value.field == field and info.value.row == row


def test_csv_plan_keeps_good_rows_and_reports_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "plan.csv"
    path.write_text("\ufeffDate,Store,Item,Discount\n2024-01-01,1,7,0.2\n2024-01-02,1,7,20%\n"
                    "2024-01-03,1,7,\n2024-01-04,x,7,0.1\n")
    good, errors = read_discounts_csv(path)
    assert good["date"].dt.day.tolist() == [1]
    assert [(e.row, e.field) for e in errors] == [(3, "discount"), (4, "discount"), (5, "store")]
    path.write_text("date,store,item,discount\n2024-01-01,1,7,2\n")
    with pytest.raises(InputError, match="no usable rows"):
        read_discounts_csv(path)


def test_overlay_extends_the_calendar_overrides_history_and_ignores_the_rest() -> None:
    history = pd.DataFrame({"date": pd.date_range("2024-01-01", periods=4).repeat(2),
                            "store": [1, 2] * 4, "item": [7, 7] * 4, "sales": 5.0,
                            "discount": [0.1, 0.0] * 4})
    panel = build_panel(history)
    plan = pd.DataFrame({"date": pd.to_datetime(["2024-01-04", "2024-01-06", "2024-01-05", "2024-01-09",
                                                 "2024-01-05"]),
                         "store": [1, 2, 1, 1, 3], "item": [7, 7, 7, 7, 7], "discount": [0.0, 0.25, 0.2, 0.3, 0.4]})
    planned = overlay_discounts(panel, plan, steps=3)
    assert planned.discount.shape == (2, 7)
    np.testing.assert_array_equal(planned.discount[0], [0.1, 0.1, 0.1, 0.0, 0.2, 0, 0])  # day 9 is too late
    np.testing.assert_array_equal(planned.discount[1], [0, 0, 0, 0, 0, 0.25, 0])  # store 3 has no history
    np.testing.assert_array_equal(planned.values, panel.values)
    np.testing.assert_array_equal(planned.discount_at(np.array([-1, 6, 7])), np.zeros((2, 3)))
