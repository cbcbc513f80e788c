"""Tests for the deterministic synthetic retail data generator (ml.synth)."""

from __future__ import annotations

import datetime as dt
import re
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml import synth
from ml.synth_catalog import CATEGORY_BY_NAME

MIGRATION = Path(__file__).resolve().parents[1] / "server" / "migrations" / "0001_domain.sql"
OMITTED = {("inventory", "updated_at"), ("promotions", "promotion_id"), ("promotions", "created_at")}
AS_OF = synth.DEFAULT_AS_OF


@pytest.fixture(scope="module")
def small() -> dict[str, pd.DataFrame]:
    return synth.generate(seed=7, scale="small")


@pytest.fixture(scope="module")
def demo() -> dict[str, pd.DataFrame]:
    return synth.generate(seed=7, scale="demo")


def _sql_columns() -> dict[str, list[str]]:
    """Column names per table, read from the domain migration."""
    text = MIGRATION.read_text()
    out: dict[str, list[str]] = {}
    for name, body in re.findall(r"CREATE TABLE IF NOT EXISTS (\w+) \((.*?)\n\);", text, flags=re.S):
        cols = []
        for line in body.splitlines():
            first = line.strip().split(" ")[0]
            if first and first.upper() not in {"PRIMARY", "CHECK", "UNIQUE", "FOREIGN", "CONSTRAINT"}:
                cols.append(first)
        out[name] = cols
    return out


def _sql_round(values: list[Decimal]) -> np.ndarray:
    """Round like Postgres numeric does (half away from zero on the exact decimal value)."""
    return np.array([float(v.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)) for v in values])


def _dec(x: object) -> Decimal:
    return Decimal(str(x))


def _labelled(orders: pd.DataFrame) -> pd.DataFrame:
    return orders[orders["is_late"].notna()]


# -- arguments and determinism ------------------------------------------------------------------------


def test_unknown_scale_is_rejected_naming_the_allowed_values() -> None:
    with pytest.raises(ValueError, match=r"scale.*demo.*small"):
        synth.generate(scale="huge")


def test_bad_seed_and_as_of_are_rejected() -> None:
    with pytest.raises(ValueError, match="seed"):
        synth.generate(seed=-1, scale="small")
    with pytest.raises(ValueError, match="as_of"):
        synth.generate(scale="small", as_of="2026-10-31")  # type: ignore[arg-type]


def test_same_seed_gives_identical_frames(small: dict[str, pd.DataFrame]) -> None:
    again = synth.generate(seed=7, scale="small")
    assert list(again) == list(small)
    for table, frame in small.items():
        pd.testing.assert_frame_equal(again[table], frame, check_exact=True, obj=table)


def test_different_seed_gives_different_data(small: dict[str, pd.DataFrame]) -> None:
    other = synth.generate(seed=8, scale="small")
    for table in ("products", "sales_daily", "customers", "orders", "promotions"):
        assert not other[table].equals(small[table]), table


def test_as_of_anchors_history_and_orders() -> None:
    as_of = dt.date(2025, 3, 15)
    data = synth.generate(seed=7, scale="small", as_of=as_of)
    dates = data["sales_daily"]["date"]
    assert dates.max() == pd.Timestamp(as_of)
    assert dates.nunique() == synth.SCALES["small"].n_days
    assert data["orders"]["order_date"].max() <= pd.Timestamp(as_of)


# -- schema ----------------------------------------------------------------------------------------------


def test_tables_and_columns_match_the_migration(small: dict[str, pd.DataFrame]) -> None:
    sql = _sql_columns()
    assert list(small) == synth.table_order()
    for table, frame in small.items():
        expected = [c for c in sql[table] if (table, c) not in OMITTED]
        assert list(frame.columns) == expected, table


def test_table_order_loads_referenced_tables_first() -> None:
    order = synth.table_order()
    for child, parents in {
        "inventory": ("stores", "products"), "sales_daily": ("stores", "products"),
        "orders": ("customers", "stores", "products"), "pricing_rules": ("products",),
        "promotions": ("stores", "products"),
    }.items():
        assert all(order.index(p) < order.index(child) for p in parents), child


def test_check_constraints_hold(small: dict[str, pd.DataFrame]) -> None:
    st, pr, inv, sa = small["stores"], small["products"], small["inventory"], small["sales_daily"]
    cu, od, ru, pm = small["customers"], small["orders"], small["pricing_rules"], small["promotions"]
    assert (st["size_sqft"] > 0).all()
    assert (pr["unit_cost"] >= 0).all() and (pr["unit_price"] >= pr["unit_cost"]).all()
    assert (pr["weight_g"] > 0).all() and pr["importance"].isin(["low", "medium", "high"]).all()
    margin = 1 - pr["unit_cost"] / pr["unit_price"]
    assert margin.between(0.19, 0.56).all()
    assert (inv["on_hand"] >= 0).all() and (inv["on_order"] >= 0).all()
    assert inv["lead_time_days"].between(2, 14).all()
    assert (sa["units"] >= 0).all() and (sa["price"] >= 0).all()
    assert ((sa["discount"] >= 0) & (sa["discount"] < 1)).all()
    assert cu["gender"].isin(["F", "M"]).all() and cu["rating"].between(1, 5).all()
    assert (cu[["prior_purchases", "care_calls", "loyalty_points"]] >= 0).all().all()
    assert (cu["created_at"] < pd.Timestamp(AS_OF)).all()
    assert (od["quantity"] > 0).all() and od["warehouse_block"].isin(list("ABCDEF")).all()
    assert od["mode_of_shipment"].isin(["Flight", "Road", "Ship"]).all()
    assert (od["customer_care_calls"] >= 0).all() and od["customer_rating"].between(1, 5).all()
    assert (od["prior_purchases"] >= 0).all() and od["gender"].isin(["F", "M"]).all()
    assert od["product_importance"].isin(["low", "medium", "high"]).all()
    assert (od["cost_of_product"] >= 0).all() and od["discount_offered"].between(0, 100).all()
    assert (od["weight_in_gms"] > 0).all() and (od["order_value"] >= 0).all()
    assert od["payment_status"].isin(["paid", "pending", "refunded"]).all()
    assert od["order_status"].isin(["processing", "shipped", "delivered", "delayed"]).all()
    assert ru["scope"].isin(["category", "sku"]).all()
    assert ((ru["min_margin"] >= 0) & (ru["min_margin"] < 1)).all()
    assert ru["max_discount"].between(0.15, 0.40).all()
    assert (((ru["scope"] == "category") & ru["category"].notna()) | ((ru["scope"] == "sku") & ru["sku"].notna())).all()
    assert ((pm["discount"] > 0) & (pm["discount"] < 1)).all() and (pm["ends_on"] >= pm["starts_on"]).all()
    assert pm["source"].eq("history").all() and pm["actor"].eq("seed").all() and pm["thread_id"].isna().all()


def test_values_are_cents_and_integers(small: dict[str, pd.DataFrame]) -> None:
    for table, col in [("products", "unit_price"), ("products", "unit_cost"), ("sales_daily", "price"),
                       ("orders", "cost_of_product"), ("orders", "order_value")]:
        cents = small[table][col].to_numpy() * 100
        assert np.allclose(cents, np.round(cents), atol=1e-6), (table, col)
    for table, col in [("sales_daily", "units"), ("orders", "quantity"), ("orders", "weight_in_gms"),
                       ("inventory", "on_hand"), ("customers", "prior_purchases")]:
        assert pd.api.types.is_integer_dtype(small[table][col]), (table, col)


def test_foreign_keys_resolve_and_keys_are_unique(small: dict[str, pd.DataFrame]) -> None:
    stores = set(small["stores"]["store_id"])
    skus = set(small["products"]["sku"])
    for table in ("inventory", "sales_daily", "promotions"):
        assert set(small[table]["store_id"]) <= stores and set(small[table]["sku"]) <= skus, table
    od = small["orders"]
    assert set(od["customer_id"]) <= set(small["customers"]["customer_id"])
    assert set(od["store_id"]) <= stores and set(od["sku"]) <= skus
    assert set(small["pricing_rules"]["sku"].dropna()) <= skus
    unique = {
        "stores": ["store_id"], "products": ["sku"], "inventory": ["store_id", "sku"],
        "sales_daily": ["store_id", "sku", "date"], "customers": ["customer_id"], "orders": ["order_id"],
        "pricing_rules": ["rule_id"], "promotions": ["idempotency_key"],
    }
    for table, key in unique.items():
        assert not small[table].duplicated(key).any(), table
    assert small["customers"]["email"].is_unique and od["tracking_id"].is_unique
    assert od["order_id"].str.fullmatch(r"ORD-\d{6}").all()


# -- sales structure ------------------------------------------------------------------------------------


def test_every_series_has_the_full_history(small: dict[str, pd.DataFrame]) -> None:
    cfg = synth.SCALES["small"]
    counts = small["sales_daily"].groupby(["store_id", "sku"]).size()
    assert len(counts) == cfg.n_stores * cfg.n_products and (counts == cfg.n_days).all()


def test_price_is_list_price_less_discount(small: dict[str, pd.DataFrame]) -> None:
    sa = small["sales_daily"].merge(small["products"][["sku", "unit_price"]], on="sku")
    expected = _sql_round([_dec(p) * (1 - _dec(d)) for p, d in zip(sa["unit_price"], sa["discount"], strict=True)])
    assert np.array_equal(sa["price"].to_numpy(), expected)


def test_weekend_peaking_categories_sell_more_at_weekends(demo: dict[str, pd.DataFrame]) -> None:
    sa = demo["sales_daily"].merge(demo["products"][["sku", "category"]], on="sku")
    weekend = sa["date"].dt.day_of_week >= 5
    ratio = sa[weekend].groupby("category")["units"].mean() / sa[~weekend].groupby("category")["units"].mean()
    peaking = [c for c in ratio.index if CATEGORY_BY_NAME[c].weekly_amp >= 0.3]
    assert len(peaking) >= 4
    assert (ratio[peaking] > 1.08).all(), ratio[peaking]


def test_seasonal_categories_peak_in_their_season(demo: dict[str, pd.DataFrame]) -> None:
    sa = demo["sales_daily"].merge(demo["products"][["sku", "category"]], on="sku")
    by_month = sa.groupby(["category", sa["date"].dt.month])["units"].mean().unstack()
    assert by_month.loc["toys"].idxmax() == 12
    assert by_month.loc["garden"].idxmax() in (4, 5, 6)
    assert by_month.loc["garden"].max() > 2 * by_month.loc["garden"].min()


def test_sales_discounts_are_exactly_the_promotion_windows(small: dict[str, pd.DataFrame]) -> None:
    sa, pm = small["sales_daily"], small["promotions"]
    days = pm.loc[pm.index.repeat((pm["ends_on"] - pm["starts_on"]).dt.days + 1)].copy()
    days["date"] = days["starts_on"] + pd.to_timedelta(days.groupby(level=0).cumcount(), unit="D")
    days = days[days["date"] <= sa["date"].max()]
    assert not days.duplicated(["store_id", "sku", "date"]).any()  # windows never overlap
    merged = sa.merge(days[["store_id", "sku", "date", "discount"]], on=["store_id", "sku", "date"],
                      how="left", suffixes=("", "_promo"))
    assert np.allclose(merged["discount"], merged["discount_promo"].fillna(0.0))
    assert pm["discount"].between(0.05, 0.40).all()
    lengths = (pm["ends_on"] - pm["starts_on"]).dt.days + 1
    assert lengths.between(5, 14).all()
    assert pm["idempotency_key"].str.fullmatch(r"seed:promo:\d+").all()


def test_promoted_days_sell_more_than_nearby_unpromoted_days(small: dict[str, pd.DataFrame]) -> None:
    sa, pm = small["sales_daily"], small["promotions"]
    series = dict(tuple(sa.groupby(["store_id", "sku"])))
    promo_units = promo_days = base_units = base_days = wins = windows = 0
    for row in pm.itertuples():
        s = series[(row.store_id, row.sku)]
        inside = s["date"].between(row.starts_on, row.ends_on)
        near = s["date"].between(row.starts_on - pd.Timedelta(days=28), row.ends_on + pd.Timedelta(days=28))
        near &= s["discount"] == 0
        if not inside.any():
            continue
        promo_units += s.loc[inside, "units"].sum()
        promo_days += inside.sum()
        base_units += s.loc[near, "units"].sum()
        base_days += near.sum()
        wins += s.loc[inside, "units"].mean() > s.loc[near, "units"].mean()
        windows += 1
    assert windows >= 20
    assert (promo_units / promo_days) > 1.1 * (base_units / base_days)
    assert wins / windows > 0.6


def test_inventory_has_out_of_stock_and_covered_items(demo: dict[str, pd.DataFrame]) -> None:
    inv = demo["inventory"]
    assert 0.02 < (inv["on_hand"] == 0).mean() < 0.2
    assert (inv["on_hand"] > 0).mean() > 0.75
    assert (inv.loc[inv["on_hand"] == 0, "on_order"] > 0).any()


# -- customers and orders ---------------------------------------------------------------------------------


def test_orders_agree_with_customers_and_products(small: dict[str, pd.DataFrame]) -> None:
    od = small["orders"]
    cu = od.merge(small["customers"], on="customer_id", suffixes=("", "_c"))
    assert (cu["gender"] == cu["gender_c"]).all()
    assert (cu["prior_purchases"] == cu["prior_purchases_c"]).all()
    assert (cu["order_date"] >= cu["created_at"]).all()
    pr = od.merge(small["products"], on="sku")
    assert (pr["product_importance"] == pr["importance"]).all()
    assert np.allclose(pr["cost_of_product"], pr["unit_price"])
    value = _sql_round([
        _dec(c) * q * (100 - d) / 100
        for c, q, d in zip(od["cost_of_product"], od["quantity"], od["discount_offered"], strict=True)
    ])
    assert np.array_equal(od["order_value"].to_numpy(), value)


def test_order_dates_and_status_are_consistent(small: dict[str, pd.DataFrame]) -> None:
    od = small["orders"]
    today = pd.Timestamp(AS_OF)
    assert od["order_date"].between(today - pd.Timedelta(days=119), today).all()
    assert (od["promised_delivery_date"] > od["order_date"]).all()
    shipped = od["ship_date"].notna()
    assert (od.loc[shipped, "ship_date"] >= od.loc[shipped, "order_date"]).all()
    assert (od.loc[shipped, "ship_date"] <= today).all()
    by = {s: od[od["order_status"] == s] for s in ("processing", "shipped", "delivered", "delayed")}
    d = by["delivered"]
    assert d["delivery_date"].notna().all() and d["ship_date"].notna().all()
    assert (d["delivery_date"] <= today).all() and (d["delivery_date"] > d["ship_date"]).all()
    assert (d["is_late"] == (d["delivery_date"] > d["promised_delivery_date"])).all()
    p = by["processing"]
    assert p["ship_date"].isna().all() and p["delivery_date"].isna().all() and p["is_late"].isna().all()
    s = by["shipped"]
    assert s["ship_date"].notna().all() and s["delivery_date"].isna().all() and s["is_late"].isna().all()
    for undelivered in (p, s):
        assert (undelivered["promised_delivery_date"] >= today).all()
    late = by["delayed"]
    assert late["delivery_date"].isna().all() and (late["promised_delivery_date"] < today).all()
    assert late["is_late"].eq(True).all()
    assert all(len(frame) > 0 for frame in by.values())
    assert (od["payment_status"] == "paid").mean() > 0.8


def test_delivery_is_late_like_the_public_shipping_data(small: dict[str, pd.DataFrame]) -> None:
    lab = _labelled(small["orders"])
    late = lab["is_late"].astype(bool)
    assert 0.5 <= late.mean() <= 0.7
    high = lab["discount_offered"] > 10
    assert 0.1 < high.mean() < 0.3
    assert late[high].mean() > 0.9
    assert late[high].mean() > late[~high].mean() + 0.3
    mid_weight = lab["weight_in_gms"].between(2000, 3999)
    assert late[mid_weight].mean() > late[~mid_weight].mean()


def test_shipping_feature_distributions(demo: dict[str, pd.DataFrame]) -> None:
    od = demo["orders"]
    modes = od["mode_of_shipment"].value_counts(normalize=True)
    assert abs(modes["Ship"] - 0.68) < 0.03 and abs(modes["Flight"] - 0.16) < 0.03
    assert abs(modes["Road"] - 0.16) < 0.03
    blocks = od["warehouse_block"].value_counts(normalize=True)
    assert "E" not in blocks and 1.7 < blocks["F"] / blocks[["A", "B", "C", "D"]].mean() < 2.3
    weight = pd.cut(od["weight_in_gms"], [1000, 2000, 4000, 6000, 10_000], right=False)
    share = weight.value_counts(normalize=True).sort_index().to_numpy()
    assert share[0] > share[1] and share[2] > share[1] and share[0] + share[2] > 0.7
    assert od["cost_of_product"].between(96, 310).mean() > 0.6
    assert od["customer_care_calls"].between(2, 7).all()
    assert 0.7 < od["discount_offered"].le(10).mean() < 0.9


def test_lateness_effects_point_the_public_way(demo: dict[str, pd.DataFrame]) -> None:
    lab = _labelled(demo["orders"])
    late = lab["is_late"].astype(bool)
    assert 0.55 <= late.mean() <= 0.65
    calls = late.groupby(lab["customer_care_calls"]).mean()
    assert calls[2] > calls[4] > calls[7]
    cheap = lab["cost_of_product"] < 200
    assert late[cheap].mean() > late[~cheap].mean()
    assert late[lab["prior_purchases"] >= 6].mean() > late[lab["prior_purchases"] <= 3].mean()
    gender = late.groupby(lab["gender"]).mean()
    assert abs(gender["F"] - gender["M"]) < 0.04


def test_delay_classifier_reaches_realistic_not_perfect_auc(demo: dict[str, pd.DataFrame]) -> None:
    lightgbm = pytest.importorskip("lightgbm")
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    lab = _labelled(demo["orders"])
    features = ["warehouse_block", "mode_of_shipment", "customer_care_calls", "customer_rating",
                "cost_of_product", "prior_purchases", "product_importance", "gender", "discount_offered",
                "weight_in_gms"]
    x = lab[features].copy()
    for col in ("warehouse_block", "mode_of_shipment", "product_importance", "gender"):
        x[col] = x[col].astype("category")
    y = lab["is_late"].astype(int)
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    auc = cross_val_score(lightgbm.LGBMClassifier(verbose=-1, n_jobs=1), x, y, cv=folds, scoring="roc_auc")
    assert 0.72 <= auc.mean() <= 0.80


def test_customer_segments_follow_purchase_history(small: dict[str, pd.DataFrame]) -> None:
    cu = small["customers"]
    assert set(cu["segment"]) <= {"new", "regular", "loyal", "vip"}
    vip = cu[cu["segment"] == "vip"]
    assert len(vip) > 0 and (vip["prior_purchases"].ge(7) | vip["loyalty_points"].ge(1000)).all()
    assert cu.loc[cu["segment"] == "new", "prior_purchases"].le(1).all()
    assert cu["prior_purchases"].between(2, 10).mean() > 0.9
    assert cu["email"].str.endswith("@example.com").all()


def test_pricing_rules_cover_every_category(small: dict[str, pd.DataFrame]) -> None:
    ru = small["pricing_rules"]
    cats = ru.loc[ru["scope"] == "category", "category"]
    assert sorted(cats) == sorted(small["products"]["category"].unique())
    assert (ru["scope"] == "sku").sum() >= 2
    ended = ru["valid_to"].notna()
    assert (ru.loc[ended, "valid_to"] >= ru.loc[ended, "valid_from"]).all()
    assert not ru.loc[ru["valid_to"] < pd.Timestamp(AS_OF), "active"].any()


def test_history_promotions_respect_the_pricing_rules(demo: dict[str, pd.DataFrame]) -> None:
    ru, pm = demo["pricing_rules"], demo["promotions"]
    promo = pm.merge(demo["products"], on="sku")
    cat_rules = ru[ru["scope"] == "category"].set_index("category")
    promo = promo.join(cat_rules[["min_margin", "max_discount"]], on="category")
    assert (promo["discount"] <= promo["max_discount"] + 1e-9).all()
    net = promo["unit_price"] * (1 - promo["discount"])
    assert ((net - promo["unit_cost"]) / net >= promo["min_margin"] - 1e-9).all()
    for rule in ru[(ru["scope"] == "sku") & (ru["rule_type"] == "premium")].itertuples():
        later = pm[(pm["sku"] == rule.sku) & (pm["ends_on"] >= rule.valid_from)]
        assert (later["discount"] <= rule.max_discount + 1e-9).all()
    assert ru.loc[ru["scope"] == "sku", "category"].map(lambda v: v is None).all()


# -- demo shape ----------------------------------------------------------------------------------------------


def test_demo_scale_shape(demo: dict[str, pd.DataFrame]) -> None:
    cfg = synth.SCALES["demo"]
    assert (cfg.n_stores, cfg.n_products, cfg.n_days) == (10, 50, 1095)
    assert len(demo["stores"]) == 10 and len(demo["products"]) == 50
    assert len(demo["sales_daily"]) == 10 * 50 * 1095 and len(demo["inventory"]) == 500
    assert len(demo["customers"]) == 5_000 and len(demo["orders"]) == 20_000
    assert demo["products"]["category"].nunique() == 8
    assert demo["sales_daily"]["date"].min() == pd.Timestamp(AS_OF - dt.timedelta(days=1094))
    assert 3 <= len(demo["promotions"]) / 500 / 3 <= 7  # a few promotions per series per year


def test_most_series_sell_tens_of_units_a_day_with_a_minority_of_slow_movers(
    demo: dict[str, pd.DataFrame],
) -> None:
    sa = demo["sales_daily"].merge(demo["products"][["sku", "category"]], on="sku")
    per_series = sa.groupby(["store_id", "sku", "category"])["units"].mean()
    assert 20 <= per_series.median() <= 80
    assert (per_series >= 10).mean() > 0.75
    slow = per_series[per_series < 5]
    assert 0.01 <= len(slow) / len(per_series) <= 0.15  # a minority, not a panel dominated by them
    assert set(slow.index.get_level_values("category")) <= {"electronics", "garden", "toys", "apparel"}
    zero_share = (sa["units"] == 0).groupby(sa["category"]).mean()
    assert (sa["units"] == 0).mean() < 0.03
    assert zero_share["electronics"] > zero_share["grocery"]  # zero days happen where volume is low


def test_day_to_day_noise_is_moderately_over_dispersed(demo: dict[str, pd.DataFrame]) -> None:
    sa = demo["sales_daily"]
    recent = sa[(sa["date"] > sa["date"].max() - pd.Timedelta(days=91)) & (sa["discount"] == 0)]
    # Same series, same weekday, one quarter, no promotion: what is left is mostly the count noise.
    groups = recent.groupby(["store_id", "sku", recent["date"].dt.day_of_week])["units"].agg(["mean", "var"])
    ratio = (groups["var"] / groups["mean"])[groups["mean"] > 0]
    assert 1.1 < ratio.median() < 3.0  # more than Poisson, far from the heavy noise of gamma shape 2-6
