"""Customer analytics on tiny hand-made frames: RFM figures, segment naming, CLV parts, the churn rule and the
co-purchase recommender, each checked against numbers worked out by hand."""

from __future__ import annotations

import math
from datetime import date

import pandas as pd
import pytest

from ml.customer_analytics import (
    churn_risk,
    clv,
    fit_segments,
    popular_items,
    recommend,
    rfm_table,
    segment_name,
)
from ml.errors import InputError

AS_OF = date(2026, 1, 31)


@pytest.fixture
def orders() -> pd.DataFrame:
    """Four customers: 1 every 10 days, 2 twice on the as-of day, 3 once long ago, 4 twice 4 days apart."""
    rows = [
        (1, "2026-01-01", 10.0), (1, "2026-01-11", 20.0), (1, "2026-01-21", 30.0),
        (2, "2026-01-31", 5.0), (2, "2026-01-31", 7.5),
        (3, "2025-12-01", 100.0),
        (4, "2026-01-01", 40.0), (4, "2026-01-05", 40.0),
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=["customer_id", "order_date", "order_value"])


@pytest.fixture
def rfm(orders: pd.DataFrame) -> pd.DataFrame:
    return rfm_table(orders, AS_OF)


# -- RFM ---------------------------------------------------------------------------------------------------


def test_rfm_by_hand(rfm: pd.DataFrame) -> None:
    assert list(rfm.index) == [1, 2, 3, 4]
    assert rfm["recency_days"].tolist() == [10, 0, 61, 26]
    assert rfm["frequency"].tolist() == [3, 2, 1, 2]
    assert rfm["monetary"].tolist() == [60.0, 12.5, 100.0, 80.0]
    assert rfm["purchase_days"].tolist() == [3, 1, 1, 2]
    assert rfm.at[1, "mean_gap_days"] == 10.0 and rfm.at[4, "mean_gap_days"] == 4.0
    assert math.isnan(rfm.at[2, "mean_gap_days"]) and math.isnan(rfm.at[3, "mean_gap_days"])
    assert rfm.at[1, "first_order"] == pd.Timestamp("2026-01-01")
    assert rfm.at[1, "last_order"] == pd.Timestamp("2026-01-21")
    assert rfm.attrs["as_of"] == AS_OF and "2026-01-31" in rfm.attrs["how"] and "8 orders" in rfm.attrs["how"]


def test_rfm_rejects_bad_input(orders: pd.DataFrame) -> None:
    with pytest.raises(InputError) as missing:
        rfm_table(orders.drop(columns="order_value"), AS_OF)
    assert missing.value.field == "order_value" and missing.value.allowed == [
        "customer_id", "order_date", "order_value",
    ]  # fmt: skip
    with pytest.raises(InputError) as future:
        rfm_table(orders, date(2026, 1, 30))
    assert future.value.field == "order_date"
    negative = orders.assign(order_value=[-1.0, *orders["order_value"][1:]])
    with pytest.raises(InputError) as bad_value:
        rfm_table(negative, AS_OF)
    assert bad_value.value.field == "order_value"


# -- segments ----------------------------------------------------------------------------------------------


def test_segment_names_from_centroid_scores() -> None:
    assert segment_name(1.0, 1.0) == "champions"
    assert segment_name(0.0, 0.5) == "loyal"
    assert segment_name(-0.5, 0.5) == "at risk"
    assert segment_name(-0.5, -0.5) == "hibernating"
    assert segment_name(-0.5, -1.2) == "lost"
    assert segment_name(0.8, -0.8) == "new customers"
    assert segment_name(0.8, 0.1) == "potential loyalists"
    assert segment_name(0.1, -0.1) == "need attention"


def _four_groups() -> pd.DataFrame:
    groups = {
        "recent big": ((1, 2, 1, 2, 3, 2), (10, 11, 12, 10, 11, 12), (1000, 1100, 1200, 1050, 1150, 1000)),
        "old big": ((60, 65, 70, 62), (10, 12, 11, 10), (1000, 1200, 1100, 1050)),
        "recent small": ((1, 2, 3, 1, 2), (1, 1, 1, 1, 2), (20, 25, 22, 21, 24)),
        "old small": ((60, 70, 65), (1, 1, 2), (20, 22, 25)),
    }
    rows = [
        (r, f, float(m)) for recency, frequency, money in groups.values()
        for r, f, m in zip(recency, frequency, money, strict=True)
    ]  # fmt: skip
    frame = pd.DataFrame(rows, columns=["recency_days", "frequency", "monetary"])
    frame.index = pd.Index(range(1, len(frame) + 1), name="customer_id")
    return frame


def test_segments_are_named_and_ordered_deterministically() -> None:
    rfm = _four_groups()
    seg = fit_segments(rfm, k=4, seed=7)
    assert [(s.name, s.size) for s in seg.segments] == [
        ("champions", 6), ("new customers", 5), ("at risk", 4), ("lost", 3),
    ]  # fmt: skip
    assert [s.segment_id for s in seg.segments] == [0, 1, 2, 3]
    assert seg.labels.loc[1:6].eq("champions").all() and seg.labels.loc[16:18].eq("lost").all()
    assert seg.silhouette is not None and seg.silhouette > 0.8
    champions = seg.segment("champions")
    assert champions.mean_frequency == pytest.approx(11.0) and champions.mean_recency_days == round(11 / 6, 2)
    assert 1 < champions.centroid_recency_days < 3 and 1000 < champions.centroid_monetary < 1200
    assert "k=4, seed=7" in seg.how and "silhouette" in seg.how
    shuffled = fit_segments(rfm.sample(frac=1.0, random_state=3), k=4, seed=7)
    assert shuffled.labels.sort_index().equals(seg.labels)
    new_rows = pd.DataFrame({"recency_days": [2, 66], "frequency": [11, 1], "monetary": [1100.0, 21.0]},
                            index=pd.Index([100, 101], name="customer_id"))  # fmt: skip
    assert seg.assign(new_rows).tolist() == ["champions", "lost"]
    with pytest.raises(InputError) as unknown:
        seg.segment("whales")
    assert unknown.value.field == "segment" and unknown.value.allowed == seg.names


def test_segments_need_enough_distinct_customers(rfm: pd.DataFrame) -> None:
    with pytest.raises(InputError) as err:
        fit_segments(rfm, k=5)
    assert err.value.field == "k"
    with pytest.raises(InputError):
        fit_segments(rfm, k=1)


# -- lifetime value ----------------------------------------------------------------------------------------


def test_clv_parts_by_hand(rfm: pd.DataFrame) -> None:
    result = clv(rfm, horizon_days=365, prior_purchases=2, value_prior_purchases=1, prior_active=0.9)
    table = result.table
    # repeat purchases x = purchase days - 1; observed T = recency + (last - first)
    assert table["repeat_purchases"].tolist() == [2, 0, 0, 1]
    assert table["observed_days"].tolist() == [30, 0, 61, 30]
    rate0 = 3 / 121
    value0 = 252.5 / 7
    assert result.population_rate_per_day == pytest.approx(rate0)
    assert result.population_value_per_purchase == pytest.approx(value0)
    # customer 1: rate (2 + 2) / (30 + 2 / rate0); value (60 + value0) / (3 + 1); silence 10 days
    rate1 = 4 / (30 + 2 / rate0)
    value1 = (60 + value0) / 4
    stay1 = 0.9 * math.exp(-rate1 * 10)
    p1 = stay1 / (stay1 + 0.1)
    assert table.at[1, "rate_per_day"] == pytest.approx(rate1, abs=1e-6)
    assert table.at[1, "own_rate_per_day"] == pytest.approx(2 / 30, abs=1e-6)
    assert table.at[1, "value_per_purchase"] == pytest.approx(value1, abs=0.005)
    assert table.at[1, "p_active"] == pytest.approx(p1, abs=1e-4)
    assert table.at[1, "purchases_if_active"] == pytest.approx(rate1 * 365, abs=1e-3)
    assert table.at[1, "clv"] == pytest.approx(p1 * rate1 * 365 * value1, abs=0.01)
    # customer 2 bought today only: the population rate, fully active odds (no silence)
    assert table.at[2, "rate_per_day"] == pytest.approx(rate0, abs=1e-6) and table.at[2, "p_active"] == 0.9
    assert math.isnan(table.at[2, "own_rate_per_day"])
    # customer 3: one purchase 61 days ago, shrunk rate 2 / (61 + 2 / rate0)
    rate3 = 2 / (61 + 2 / rate0)
    stay3 = 0.9 * math.exp(-rate3 * 61)
    assert table.at[3, "rate_per_day"] == pytest.approx(rate3, abs=1e-6)
    assert table.at[3, "clv"] == pytest.approx(stay3 / (stay3 + 0.1) * rate3 * 365 * (100 + value0) / 2, abs=0.01)
    assert "365 days" in result.how and "as of 2026-01-31" in result.how


def test_clv_rejects_bad_parameters(rfm: pd.DataFrame) -> None:
    with pytest.raises(InputError) as err:
        clv(rfm, prior_active=0)
    assert err.value.field == "prior_active"
    with pytest.raises(InputError) as horizon:
        clv(rfm, horizon_days=0)
    assert horizon.value.field == "horizon_days"


# -- churn -------------------------------------------------------------------------------------------------


def test_churn_rule_by_hand(rfm: pd.DataFrame) -> None:
    result = churn_risk(rfm, threshold=2.0, prior_gaps=1.0)
    table = result.table
    assert result.population_gap_days == 7.0  # median of the repeat customers' gaps 10 and 4
    # customer 1: (2 gaps x 10 days + 7) / 3 = 9; 10 days silent -> 1.11x
    assert table.at[1, "usual_gap_days"] == 9.0 and table.at[1, "gap_basis"] == "own"
    assert table.at[1, "overdue_ratio"] == pytest.approx(10 / 9, abs=1e-3) and not table.at[1, "at_risk"]
    # customer 4: (4 + 7) / 2 = 5.5; 26 days silent -> 4.73x, at risk
    ratio4 = 26 / 5.5
    assert table.at[4, "usual_gap_days"] == 5.5 and table.at[4, "at_risk"]
    assert table.at[4, "score"] == pytest.approx(ratio4**2 / (ratio4**2 + 4), abs=1e-4)
    # one-day buyers get the population's gap: customer 3 silent 61 days (8.7x), customer 2 bought today
    assert table.at[3, "gap_basis"] == "population" and table.at[3, "usual_gap_days"] == 7.0
    assert table.at[3, "at_risk"] and not table.at[2, "at_risk"] and table.at[2, "score"] == 0.0
    assert table.at[3, "reason"].startswith("at risk: last order 61 days ago, 8.7x the population's usual gap")
    assert table.at[1, "reason"].startswith("not at risk: last order 10 days ago, 1.1x the usual gap of 9.0 days")
    assert "exceed 2x" in result.how and "as of 2026-01-31" in result.how


def test_score_is_one_half_at_the_threshold(rfm: pd.DataFrame) -> None:
    exactly = rfm.copy()
    exactly.loc[1, "recency_days"] = 18  # 2 x the usual gap of 9 days
    table = churn_risk(exactly).table
    assert table.at[1, "score"] == 0.5 and not table.at[1, "at_risk"]


# -- recommendations ---------------------------------------------------------------------------------------


@pytest.fixture
def purchases() -> pd.DataFrame:
    rows = [
        (1, 1001, 1), (1, 1002, 2), (1, 1003, 1),
        (2, 1001, 1), (2, 1002, 1),
        (3, 1001, 1), (3, 1003, 1),
        (4, 1002, 1), (4, 1004, 1),
        (5, 1005, 1),
        (6, 1006, 1),
        (7, 1005, 1),
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=["customer_id", "sku", "quantity"])


@pytest.fixture
def products() -> pd.DataFrame:
    rows = [
        (1001, "Cold Brew Coffee", "beverages"), (1002, "Oat Milk", "beverages"), (1003, "Croissant", "bakery"),
        (1004, "Bagel", "bakery"), (1005, "Yoga Mat", "sports"), (1006, "Green Tea", "beverages"),
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=["sku", "name", "category"])


def test_co_purchase_order_and_reasons(purchases: pd.DataFrame, products: pd.DataFrame) -> None:
    recs = recommend(2, purchases, k=5, products=products, as_of=AS_OF)
    assert [(r.sku, r.source) for r in recs] == [
        (1003, "co_purchase"), (1004, "co_purchase"), (1006, "popular_in_category"), (1005, "popular"),
    ]  # fmt: skip
    # Croissant: cosine with Cold Brew 2 / sqrt(3 x 2), with Oat Milk 1 / sqrt(3 x 2)
    assert recs[0].score == pytest.approx(round(3 / math.sqrt(6), 4))
    assert recs[0].reason == (
        "bought by 2 customers who also bought Cold Brew Coffee (sku 1001) (cosine 0.82); "
        "linked to 1 more of their items"
    )
    assert recs[1].score == pytest.approx(round(1 / math.sqrt(3), 4))
    assert recs[1].reason == "bought by 1 customer who also bought Oat Milk (sku 1002) (cosine 0.58)"
    assert recs[2].reason == (
        "popular in beverages, a category this customer buys from: bought by 1 customer (no co-purchase signal)"
    )
    assert recs[2].score == pytest.approx(round(1 / 7, 4)) and recs[2].name == "Green Tea"
    assert recs[3].reason == "popular overall: bought by 2 customers (no co-purchase signal)"
    assert all(r.sku not in (1001, 1002) for r in recs)
    assert "collaborative filtering as of 2026-01-31" in recs[0].how
    assert [r.sku for r in recommend(2, purchases, k=1, products=products)] == [1003]


def test_fallback_without_co_purchase_signal(purchases: pd.DataFrame, products: pd.DataFrame) -> None:
    # customer 5 bought only the Yoga Mat, whose other buyer bought nothing else; no other sports item exists
    recs = recommend(5, purchases, k=3, products=products)
    assert [r.sku for r in recs] == [1002, 1001, 1003]  # 3 buyers each, Oat Milk has more units; then 2 buyers
    assert {r.source for r in recs} == {"popular"}
    assert recs[0].reason == "popular overall: bought by 3 customers (no co-purchase signal)"


def test_without_a_catalog_items_are_named_by_sku(purchases: pd.DataFrame) -> None:
    recs = recommend(3, purchases, k=2)
    assert recs[0].sku == 1002 and recs[0].name is None
    assert recs[0].reason.startswith("bought by 2 customers who also bought sku 1001 (cosine 0.67)")


def test_unknown_customer_and_bad_k(purchases: pd.DataFrame) -> None:
    with pytest.raises(InputError) as unknown:
        recommend(99, purchases)
    assert unknown.value.field == "customer_id"
    with pytest.raises(InputError) as bad_k:
        recommend(2, purchases, k=0)
    assert bad_k.value.field == "k"
    with pytest.raises(InputError) as missing:
        recommend(2, purchases.drop(columns="quantity"))
    assert missing.value.field == "quantity"


def test_popular_items_for_a_new_customer(purchases: pd.DataFrame, products: pd.DataFrame) -> None:
    recs = popular_items(purchases, k=2, products=products, categories={"bakery"})
    assert [(r.sku, r.source) for r in recs] == [(1003, "popular_in_category"), (1004, "popular_in_category")]
