"""Reference data for the synthetic retail generator: category profiles, stores, products, pricing rules.

Every function here takes a numpy ``Generator`` (its own stream) plus whatever reference data it depends
on, and returns a DataFrame whose columns are exactly the matching table's columns.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.synth_util import as_date_series, round_money


@dataclass(frozen=True)
class CategoryProfile:
    """How one product category prices, weighs, sells and is replenished.

    ``weekly_amp`` scales the weekday shape (positive = weekend peak); ``yearly_amp``/``yearly_peak_doy``/
    ``yearly_sharpness`` shape the yearly season (day of year of the peak; higher sharpness = narrower peak);
    ``elasticity`` turns a discount ``d`` into a demand lift ``(1 - d) ** -elasticity``; ``dispersion`` is the
    gamma shape of the count noise (lower = noisier); ``max_discount`` is the category pricing rule's cap.
    """

    name: str
    price_range: tuple[float, float]
    margin_range: tuple[float, float]
    weight_range: tuple[int, int]
    base_units: float
    weekly_amp: float
    yearly_amp: float
    yearly_peak_doy: int
    yearly_sharpness: float
    trend_per_year: float
    elasticity: float
    dispersion: float
    lead_time_range: tuple[int, int]
    max_discount: float
    min_margin: float
    intermittent_share: float
    nouns: tuple[str, ...]


CATEGORIES: tuple[CategoryProfile, ...] = (
    CategoryProfile(
        "grocery", (1.5, 14.0), (0.20, 0.32), (200, 2500), 90.0, 0.30, 0.08, 350, 1.0, 0.03, 2.4, 80.0,
        (2, 4), 0.20, 0.08, 0.0,
        ("Rolled Oats", "Basmati Rice", "Penne Pasta", "Peanut Butter", "Wildflower Honey", "Olive Oil",
         "Tomato Passata", "Granola", "Sea Salt Crackers", "Red Lentils"),
    ),
    CategoryProfile(
        "beverages", (1.0, 18.0), (0.25, 0.45), (330, 2400), 100.0, 0.35, 0.30, 200, 1.0, 0.04, 3.0, 70.0,
        (2, 5), 0.25, 0.10, 0.0,
        ("Sparkling Water 6-pack", "Cold Brew Coffee", "Green Tea", "Orange Juice", "Cola 2L",
         "Lemonade", "Ginger Beer", "Oat Drink", "Espresso Beans", "Iced Tea"),
    ),
    CategoryProfile(
        "household", (4.0, 140.0), (0.25, 0.45), (300, 4500), 40.0, 0.15, 0.10, 95, 1.0, 0.02, 2.1, 45.0,
        (3, 7), 0.30, 0.12, 0.0,
        ("Laundry Detergent", "Dish Soap", "Paper Towels", "Storage Boxes", "Steam Mop", "Bath Towel Set",
         "Trash Bags", "Cast Iron Skillet", "Vacuum Bags", "Glass Cleaner"),
    ),
    CategoryProfile(
        "personal_care", (2.5, 60.0), (0.38, 0.55), (100, 1200), 45.0, 0.06, 0.05, 180, 1.0, 0.03, 2.0, 50.0,
        (3, 7), 0.25, 0.20, 0.0,
        ("Shampoo", "Body Wash", "Toothpaste", "Sunscreen SPF50", "Hand Cream", "Electric Toothbrush",
         "Deodorant", "Face Serum", "Razor Kit", "Lip Balm"),
    ),
    CategoryProfile(
        "electronics", (35.0, 450.0), (0.20, 0.32), (150, 6500), 8.0, 0.40, 0.45, 345, 3.0, -0.02, 3.4, 20.0,
        (7, 14), 0.20, 0.05, 0.20,
        ("Wireless Earbuds", "Bluetooth Speaker", "Smart Watch", "USB-C Charger", "4K Streaming Stick",
         "Tablet 10in", "Mechanical Keyboard", "Soundbar", "Portable Projector", "Action Camera"),
    ),
    CategoryProfile(
        "apparel", (18.0, 210.0), (0.42, 0.55), (150, 1800), 22.0, 0.45, 0.25, 260, 1.5, 0.00, 3.0, 30.0,
        (7, 14), 0.40, 0.15, 0.05,
        ("Denim Jacket", "Running Shoes", "Wool Sweater", "Rain Coat", "Cotton T-Shirt", "Chino Trousers",
         "Hiking Boots", "Fleece Hoodie", "Linen Shirt", "Winter Parka"),
    ),
    CategoryProfile(
        "toys", (10.0, 170.0), (0.35, 0.50), (150, 4000), 18.0, 0.50, 0.90, 352, 6.0, 0.02, 3.0, 25.0,
        (5, 12), 0.35, 0.12, 0.10,
        ("Building Blocks Set", "Plush Bear", "Remote Control Car", "Puzzle 1000pc", "Board Game",
         "Doll House", "Science Kit", "Wooden Train Set", "Art Easel", "Drone Mini"),
    ),
    CategoryProfile(
        "garden", (8.0, 330.0), (0.30, 0.50), (500, 9000), 16.0, 0.45, 0.95, 140, 2.0, 0.03, 2.4, 25.0,
        (4, 10), 0.30, 0.10, 0.12,
        ("Potting Soil 40L", "Garden Hose", "Pruning Shears", "Lawn Mower", "Patio Chair", "Seed Starter Kit",
         "Bird Feeder", "Raised Bed Planter", "Leaf Blower", "Solar Path Lights"),
    ),
)
"""The product categories, in the order products are assigned to them (cyclically)."""

CATEGORY_BY_NAME: dict[str, CategoryProfile] = {c.name: c for c in CATEGORIES}

_CITIES: tuple[tuple[str, str], ...] = (
    ("Eastmere", "East"), ("Port Calder", "West"), ("Redhollow", "South"), ("Silverbrook", "North"),
    ("Westvale", "West"), ("Brightwater", "Central"), ("Oakhaven", "North"), ("Millbrook Falls", "Central"),
    ("Stonereach", "South"), ("Larkspur Bay", "East"), ("Ferndale Cross", "North"), ("Amberfield", "South"),
)
"""Made-up cities and their regions, shared by stores and customers."""

CITY_NAMES: tuple[str, ...] = tuple(c for c, _ in _CITIES)

_STORE_KINDS = ("Market", "Superstore", "Centre", "Express", "Outlet")
_BRANDS = ("Northfield", "Brightway", "Kestrel", "Aldermoor", "Sunhaven", "Bluecrest", "Tidewell", "Orchard Lane")
_IMPORTANCE = np.array(["low", "medium", "high"])
_IMPORTANCE_P = np.array([0.48, 0.43, 0.09])


def make_stores(rng: np.random.Generator, n_stores: int, history_start: dt.date) -> pd.DataFrame:
    """Stores with made-up names, cities and regions; every store opened before the sales history starts."""
    city_idx = rng.permutation(len(_CITIES))
    cities, regions, names = [], [], []
    for i in range(n_stores):
        city, region = _CITIES[int(city_idx[i % len(_CITIES)])]
        lap = i // len(_CITIES)
        kind = _STORE_KINDS[int(rng.integers(len(_STORE_KINDS)))]
        names.append(f"RIMAS {city} {kind}" + (f" {lap + 1}" if lap else ""))
        cities.append(city)
        regions.append(region)
    size = (np.round(rng.lognormal(np.log(24_000), 0.45, n_stores) / 500) * 500).clip(6_000, 80_000)
    days_before = rng.integers(120, 6_000, n_stores)
    opened = [history_start - dt.timedelta(days=int(d)) for d in days_before]
    return pd.DataFrame(
        {
            "store_id": np.arange(1, n_stores + 1, dtype=np.int64),
            "name": names,
            "city": cities,
            "region": regions,
            "size_sqft": size.astype(np.int64),
            "opened_on": as_date_series(opened),
        }
    )


def product_category_index(n_products: int) -> np.ndarray:
    """Category index of each product: cyclic, so any catalog of >= 8 products covers every category."""
    return np.arange(n_products) % len(CATEGORIES)


def _stratified(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` numbers in [0, 1) spread evenly (one per stratum, shuffled) so small catalogs stay varied."""
    return rng.permutation((np.arange(n) + rng.random(n)) / max(n, 1))


def make_products(rng: np.random.Generator, n_products: int, first_sku: int = 1001) -> pd.DataFrame:
    """Products with category-typical price, margin (20-55 %), weight and importance."""
    cat_idx = product_category_index(n_products)
    names: list[str] = [""] * n_products
    price = np.zeros(n_products)
    margin = np.zeros(n_products)
    weight = np.zeros(n_products, dtype=np.int64)
    for ci, prof in enumerate(CATEGORIES):
        members = np.flatnonzero(cat_idx == ci)
        if members.size == 0:
            continue
        lo, hi = np.log(prof.price_range[0]), np.log(prof.price_range[1])
        u_price = _stratified(rng, members.size)
        price[members] = np.exp(lo + (hi - lo) * u_price)
        margin[members] = rng.uniform(*prof.margin_range, members.size)
        # Within a category, dearer items tend to be bulkier (a soundbar vs. a charger).
        u_weight = 0.65 * u_price + 0.35 * rng.random(members.size)
        wlo, whi = np.log(prof.weight_range[0]), np.log(prof.weight_range[1])
        weight[members] = np.round(np.exp(wlo + (whi - wlo) * u_weight) / 10) * 10
        nouns = rng.permutation(len(prof.nouns))
        brands = rng.permutation(len(_BRANDS))
        for k, m in enumerate(members):
            noun = prof.nouns[int(nouns[k % len(prof.nouns)])]
            brand = _BRANDS[int(brands[k % len(_BRANDS)])]
            suffix = f" {k // len(prof.nouns) + 1}" if k >= len(prof.nouns) else ""
            names[m] = f"{brand} {noun}{suffix}"
    # Shelf prices end in .49 or .99 above $5, otherwise cents are kept.
    nice = np.where(price >= 5, np.floor(price) + np.where(price % 1 < 0.5, 0.49, 0.99), price)
    unit_price = round_money(nice)
    unit_cost = round_money(unit_price * (1 - margin))
    n_high = max(1, round(_IMPORTANCE_P[2] * n_products))
    n_medium = round(_IMPORTANCE_P[1] * n_products)
    counts = [n_products - n_high - n_medium, n_medium, n_high]
    importance = rng.permutation(np.repeat(_IMPORTANCE, counts))
    return pd.DataFrame(
        {
            "sku": np.arange(first_sku, first_sku + n_products, dtype=np.int64),
            "name": names,
            "category": [CATEGORIES[i].name for i in cat_idx],
            "unit_cost": unit_cost,
            "unit_price": unit_price,
            "weight_g": weight,
            "importance": importance.astype(object),
        }
    )


PREMIUM_MAX_DISCOUNT = 0.15
"""``max_discount`` of the per-sku 'premium' rules (high-margin items whose margin is protected)."""


def make_pricing_rules(
    rng: np.random.Generator, products: pd.DataFrame, promotions: pd.DataFrame, as_of: dt.date
) -> pd.DataFrame:
    """One active 'standard' rule per category plus a few per-sku overrides (clearance, premium, expired).

    ``min_margin`` bounds the margin after discount, ``(price * (1 - d) - cost) / (price * (1 - d))``;
    ``max_discount`` bounds ``d``. History promotions respect their category rule; a premium rule starts
    only after the last history promotion of its sku that it would forbid, so the history never breaks a
    rule that was in force.
    """
    rows: list[dict[str, object]] = []
    present = [c for c in CATEGORIES if (products["category"] == c.name).any()]
    for prof in present:
        rows.append(
            {
                "scope": "category", "category": prof.name, "sku": None, "rule_type": "standard",
                "min_margin": prof.min_margin, "max_discount": prof.max_discount,
                "valid_from": as_of - dt.timedelta(days=int(rng.integers(400, 1_200))), "valid_to": None,
                "active": True,
            }
        )
    price = products["unit_price"].to_numpy(dtype=float)
    margin = 1.0 - products["unit_cost"].to_numpy(dtype=float) / price
    order = [int(i) for i in rng.permutation(len(products))]
    kinds = ("clearance", "premium", "expired")
    used: set[int] = set()
    for k in range(min(max(2, len(products) // 10), len(products))):
        kind = kinds[k % len(kinds)]
        free = [i for i in order if i not in used]
        pool = [i for i in free if margin[i] >= 0.35] if kind == "premium" else free
        p = pool[0] if pool else max(free, key=lambda i: margin[i])
        used.add(p)
        sku = int(products["sku"].iloc[p])
        if kind == "clearance":
            rule = {"rule_type": "clearance", "min_margin": 0.0, "max_discount": float(rng.choice([0.35, 0.40])),
                    "valid_from": as_of - dt.timedelta(days=int(rng.integers(5, 40))),
                    "valid_to": as_of + dt.timedelta(days=int(rng.integers(20, 90))), "active": True}
        elif kind == "premium":
            protected = np.floor((1 - (1 - margin[p]) / (1 - PREMIUM_MAX_DISCOUNT)) * 100) / 100
            forbidden = promotions[(promotions["sku"] == sku) & (promotions["discount"] > PREMIUM_MAX_DISCOUNT)]
            start = as_of - dt.timedelta(days=int(rng.integers(60, 400)))
            if len(forbidden):
                start = max(start, forbidden["ends_on"].max().date() + dt.timedelta(days=1))
            rule = {"rule_type": "premium", "min_margin": float(max(protected, 0.0)),
                    "max_discount": PREMIUM_MAX_DISCOUNT, "valid_from": start, "valid_to": None, "active": True}
        else:
            start = as_of - dt.timedelta(days=int(rng.integers(200, 500)))
            rule = {"rule_type": "clearance", "min_margin": 0.0, "max_discount": 0.40, "valid_from": start,
                    "valid_to": start + dt.timedelta(days=int(rng.integers(30, 90))), "active": False}
        rows.append({"scope": "sku", "category": None, "sku": sku, **rule})
    df = pd.DataFrame(rows)
    return pd.DataFrame(
        {
            "rule_id": np.arange(1, len(df) + 1, dtype=np.int64),
            "scope": df["scope"].tolist(),
            "category": pd.Series([r["category"] for r in rows], dtype=object),
            "sku": pd.array(df["sku"].tolist(), dtype="Int64"),
            "rule_type": df["rule_type"].tolist(),
            "min_margin": df["min_margin"].astype(float).round(3),
            "max_discount": df["max_discount"].astype(float).round(3),
            "valid_from": as_date_series(df["valid_from"].tolist()),
            "valid_to": as_date_series(df["valid_to"].tolist()),
            "active": df["active"].astype(bool),
        }
    )
