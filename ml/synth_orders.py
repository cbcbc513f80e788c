"""Customers and fulfillment orders, with delivery lateness shaped like the public e-commerce shipping data.

Lateness is drawn from an explicit probability model (:func:`late_probability`) over the ten shipping
features, and the ship / delivery dates are derived from the drawn label, so the label and the dates
always agree. Order status, NULL dates and ``is_late`` follow from those dates relative to ``as_of``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.synth_catalog import CITY_NAMES
from ml.synth_util import as_date_series, day_numbers_to_dates, round_money

ORDER_WINDOW_DAYS = 120
"""Orders are placed over the last this-many days of history (``as_of`` included)."""

SLA_DAYS = {"Flight": 2, "Road": 4, "Ship": 7}
"""Transit days promised per shipping mode, on top of :data:`PROCESSING_ALLOWANCE_DAYS`."""

PROCESSING_ALLOWANCE_DAYS = 1
"""Warehouse processing days included in every promised delivery date."""

MODES = np.array(["Ship", "Flight", "Road"])
MODE_P = np.array([0.68, 0.16, 0.16])
BLOCKS = np.array(["A", "B", "C", "D", "F"])
BLOCK_P = np.array([1, 1, 1, 1, 2]) / 6
CARRIERS = {
    "Ship": (("Harborline Cargo", "HLC"), ("BlueWave Freight", "BWF")),
    "Flight": (("SkyDash Air", "SDA"), ("AeroSwift Express", "ASX")),
    "Road": (("Roadrunner Logistics", "RRL"), ("Kestrel Trucking", "KTR")),
}
"""Made-up carriers per mode, with their tracking-id prefixes."""

CARE_CALLS = np.arange(2, 8)
CARE_CALLS_P = np.array([0.058, 0.292, 0.323, 0.212, 0.092, 0.023])
WEIGHT_BANDS = ((1000, 2000), (2000, 4000), (4000, 6000), (6000, 8000))
WEIGHT_BAND_P = np.array([0.33, 0.12, 0.49, 0.06])
HIGH_DISCOUNT_P_BY_BAND = np.array([0.33, 0.36, 0.07, 0.15])
"""Share of orders with a discount above 10 % in each weight band (heavy parcels rarely get big discounts)."""

_FIRST_F = ("Ava", "Maya", "Lena", "Nora", "Iris", "Clara", "Zoe", "Ruby", "Elena", "Hana", "Priya", "Sofia",
            "Amara", "Leah", "Mina", "Tessa", "Yara", "Ines", "Julia", "Keira")
_FIRST_M = ("Liam", "Noah", "Omar", "Theo", "Felix", "Arjun", "Mateo", "Jonas", "Kai", "Ravi", "Elias",
            "Hugo", "Samir", "Owen", "Luca", "Tomas", "Diego", "Ezra", "Finn", "Marco")
_LAST = ("Harper", "Okafor", "Lindqvist", "Moreau", "Tanaka", "Castillo", "Novak", "Brennan", "Haddad",
         "Kowalski", "Mensah", "Ferreira", "Sato", "Whitfield", "Rahman", "Duarte", "Byrne", "Ivanova",
         "Quinn", "Adeyemi", "Larsen", "Petrov", "Santos", "Walsh", "Nakamura")
_PRIOR_VALUES = np.arange(0, 11)
_PRIOR_P = np.array([0.02, 0.03, 0.22, 0.34, 0.19, 0.11, 0.05, 0.013, 0.012, 0.005, 0.015])


def segment_for(prior_purchases: np.ndarray, loyalty_points: np.ndarray) -> np.ndarray:
    """Customer segment: vip (>= 7 purchases or >= 1,000 points), loyal (>= 5), regular (>= 2), else new."""
    return np.select(
        [(prior_purchases >= 7) | (loyalty_points >= 1000), prior_purchases >= 5, prior_purchases >= 2],
        ["vip", "loyal", "regular"],
        "new",
    ).astype(object)


def make_customers(rng: np.random.Generator, n_customers: int, as_of: dt.date) -> pd.DataFrame:
    """Customers with made-up names, unique example.com emails and purchase-history-derived segments."""
    gender = np.where(rng.random(n_customers) < 0.504, "F", "M")
    first_f = rng.integers(len(_FIRST_F), size=n_customers)
    first_m = rng.integers(len(_FIRST_M), size=n_customers)
    last = rng.integers(len(_LAST), size=n_customers)
    ids = np.arange(1, n_customers + 1)
    first = [(_FIRST_F[a] if g == "F" else _FIRST_M[b]) for g, a, b in zip(gender, first_f, first_m, strict=True)]
    names = [f"{f} {_LAST[k]}" for f, k in zip(first, last, strict=True)]
    emails = [f"{f.lower()}.{_LAST[k].lower()}.{i}@example.com" for f, k, i in zip(first, last, ids, strict=True)]
    prior = rng.choice(_PRIOR_VALUES, size=n_customers, p=_PRIOR_P / _PRIOR_P.sum())
    points = np.maximum(0, np.round(prior * rng.uniform(60, 160, n_customers) + rng.normal(0, 40, n_customers)))
    points = points.astype(np.int64)
    age_days = np.where(prior <= 1, rng.integers(1, 150, n_customers),
                        rng.integers(150, 400, n_customers) + prior * rng.integers(30, 220, n_customers))
    created = [as_of - dt.timedelta(days=int(d)) for d in age_days]
    return pd.DataFrame(
        {
            "customer_id": ids.astype(np.int64),
            "name": names,
            "email": emails,
            "gender": gender.astype(object),
            "city": np.array(CITY_NAMES, dtype=object)[rng.integers(len(CITY_NAMES), size=n_customers)],
            "segment": segment_for(prior, points),
            "prior_purchases": prior.astype(np.int64),
            "rating": rng.choice(np.arange(1, 6), size=n_customers, p=[0.19, 0.20, 0.21, 0.20, 0.20]),
            "care_calls": rng.poisson(0.8 + 0.6 * prior).astype(np.int64),
            "loyalty_points": points,
            "created_at": as_date_series(created),
        }
    )


LATE_SHARE_TARGET = 0.60
"""Expected share of late orders (the public shipping data has 59.7 %)."""

HIGH_DISCOUNT_LATE_P = 0.96
"""P(late) of an order discounted by more than 10 %."""


@dataclass(frozen=True)
class ShippingFeatures:
    """The shipping features lateness depends on, one array per feature (one element per order)."""

    discount: np.ndarray
    weight: np.ndarray
    care_calls: np.ndarray
    cost: np.ndarray
    prior: np.ndarray
    importance: np.ndarray
    block: np.ndarray
    mode: np.ndarray


def _feature_logit(f: ShippingFeatures) -> np.ndarray:
    """Log-odds of lateness (without intercept) for orders discounted by 10 % or less."""
    band_effect = np.select([f.weight < 2000, f.weight < 4000, f.weight < 6000], [0.05, 1.7, -0.45], 0.35)
    return (
        band_effect
        - 0.22 * (f.care_calls - 4)
        - 0.25 * (np.clip(f.cost, 96, 310) - 210) / 100
        + 0.06 * (np.clip(f.prior, 2, 10) - 3.5)
        + np.where(f.importance == "high", 0.35, 0.0)
        + np.where(f.block == "F", 0.08, 0.0)
        + np.where(f.mode == "Flight", 0.06, 0.0)
    )


def late_probability(f: ShippingFeatures, intercept: float) -> np.ndarray:
    """P(late) of each order from its shipping features (the generator's ground truth).

    Discounts above 10 % are almost always late; 2-4 kg parcels are mostly late and 4-6 kg ones less so;
    more care calls and costlier products are somewhat less late; customers with many prior purchases and
    high-importance products slightly more; warehouse block F and air freight marginally more. Gender and
    customer rating have no effect.
    """
    p_regular = 1.0 / (1.0 + np.exp(-(intercept + _feature_logit(f))))
    return np.where(f.discount > 10, HIGH_DISCOUNT_LATE_P, p_regular)


def calibrated_intercept(f: ShippingFeatures, target: float = LATE_SHARE_TARGET) -> float:
    """The intercept whose mean :func:`late_probability` over these orders equals ``target`` (bisection).

    Calibrating per dataset keeps the late share near the public data's whatever the catalog's prices and
    weights are.
    """
    lo, hi = -8.0, 8.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if late_probability(f, mid).mean() < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _balance(mass: np.ndarray, row_target: np.ndarray, col_target: np.ndarray, rounds: int = 300) -> np.ndarray:
    """Scale rows and columns of a non-negative matrix towards given row and column sums (Sinkhorn).

    Rows or columns with no mass are dropped from the targets, so an unreachable band or a product that
    fits no band simply gets no orders instead of breaking the fit.
    """
    rows_ok = mass.sum(axis=1) > 0
    cols_ok = mass.sum(axis=0) > 0
    r_t = np.where(rows_ok, row_target, 0.0)
    c_t = np.where(cols_ok, col_target, 0.0)
    r_t, c_t = r_t / r_t.sum(), c_t / c_t.sum()
    out = mass / mass.sum()
    for _ in range(rounds):
        rs = out.sum(axis=1)
        out = out * np.divide(r_t, rs, out=np.zeros_like(rs), where=rs > 0)[:, None]
        cs = out.sum(axis=0)
        out = out * np.divide(c_t, cs, out=np.zeros_like(cs), where=cs > 0)[None, :]
    return out / out.sum()


def _pick_product_and_quantity(
    rng: np.random.Generator, products: pd.DataFrame, n: int, max_qty: int = 12
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Choose (product row, quantity, parcel weight band) per order.

    Parcel weights follow the public data's shape (:data:`WEIGHT_BAND_P`) while order volume spreads over
    the catalog, favouring products priced 96-310 (the e-commerce range) and small quantities: a
    (product x band) plan is balanced to both targets, then a quantity whose nominal weight
    (``weight_g * quantity``) falls in the band is drawn. Products that fit no band get no orders; a band
    no product fits is skipped.
    """
    w = products["weight_g"].to_numpy(dtype=float)
    price = products["unit_price"].to_numpy(dtype=float)
    qty = np.arange(1, max_qty + 1)
    q_pref = 0.6 ** (qty - 1)
    nominal = w[:, None] * qty[None, :]  # (product x quantity)
    band_of = np.searchsorted(np.array([lo for lo, _ in WEIGHT_BANDS] + [WEIGHT_BANDS[-1][1]]), nominal,
                              side="right") - 1  # -1 below the first band, len(bands) above the last
    n_bands = len(WEIGHT_BANDS)
    mass = np.stack([(q_pref[None, :] * (band_of == b)).sum(axis=1) for b in range(n_bands)], axis=1)
    product_target = np.where((price >= 96) & (price <= 310), 1.0, 0.06)
    plan = _balance(mass, product_target, WEIGHT_BAND_P)
    cell = rng.choice(plan.size, size=n, p=plan.ravel())
    prod, band = np.divmod(cell, n_bands)
    q_weights = q_pref[None, :] * (band_of[prod] == band[:, None])  # (order x quantity)
    cum = np.cumsum(q_weights, axis=1)
    u = rng.random(n) * cum[:, -1]
    quantity = qty[(cum <= u[:, None]).sum(axis=1)]
    return prod.astype(np.int64), quantity.astype(np.int64), band.astype(np.int64)


def _order_days(rng: np.random.Generator, customers: pd.DataFrame, cust: np.ndarray, day0: dt.date) -> np.ndarray:
    """Order day numbers (0 = ``day0``), uniform over the window but never before the customer existed."""
    created = customers["created_at"].to_numpy().astype("datetime64[D]") - np.datetime64(day0, "D")
    lo = np.maximum(created.astype(np.int64)[cust], 0)
    return lo + np.floor(rng.random(cust.size) * (ORDER_WINDOW_DAYS - lo)).astype(np.int64)


def _parcel_weight(rng: np.random.Generator, nominal: np.ndarray, band: np.ndarray) -> np.ndarray:
    """Parcel grams: nominal product weight with a little noise plus packaging, kept inside its band."""
    weight = np.round(nominal * rng.lognormal(0.0, 0.03, nominal.size) + rng.uniform(30, 180, nominal.size))
    lo = np.array([b[0] for b in WEIGHT_BANDS])[band]
    hi = np.array([b[1] for b in WEIGHT_BANDS])[band] - 1
    return np.clip(weight, lo + 1, hi).astype(np.int64)


def _discount_offered(rng: np.random.Generator, weight: np.ndarray) -> np.ndarray:
    """Integer discount percent: mostly 1-10, about a fifth 11-65 (lighter parcels more often)."""
    band = np.searchsorted(np.array([2000, 4000, 6000]), weight, side="right")
    high = rng.random(weight.size) < HIGH_DISCOUNT_P_BY_BAND[np.minimum(band, 3)]
    return np.where(high, rng.integers(11, 66, weight.size), rng.integers(1, 11, weight.size)).astype(np.int64)


def make_orders(
    rng: np.random.Generator, customers: pd.DataFrame, stores: pd.DataFrame, products: pd.DataFrame,
    n_orders: int, as_of: dt.date,
) -> pd.DataFrame:
    """Fulfillment orders over the last :data:`ORDER_WINDOW_DAYS` days, consistent with ``as_of``."""
    n = n_orders
    prior_all = customers["prior_purchases"].to_numpy()
    cust = rng.choice(len(customers), size=n, p=(1 + 0.25 * prior_all) / (1 + 0.25 * prior_all).sum())
    size = stores["size_sqft"].to_numpy(dtype=float)
    store = rng.choice(len(stores), size=n, p=size / size.sum())
    prod, qty, band = _pick_product_and_quantity(rng, products, n)

    day0 = as_of - dt.timedelta(days=ORDER_WINDOW_DAYS - 1)
    order_day = _order_days(rng, customers, cust, day0)
    mode = rng.choice(MODES, size=n, p=MODE_P)
    block = rng.choice(BLOCKS, size=n, p=BLOCK_P)
    cost = products["unit_price"].to_numpy(dtype=float)[prod]
    weight = _parcel_weight(rng, products["weight_g"].to_numpy(dtype=float)[prod] * qty, band)
    discount = _discount_offered(rng, weight)
    # Costlier products draw a few more care calls (as in the public data).
    calls = rng.choice(CARE_CALLS, size=n, p=CARE_CALLS_P)
    calls = np.clip(calls + (rng.random(n) < np.clip((cost - 180) / 300, 0, 0.5)).astype(np.int64), 2, 7)
    cust_rating = customers["rating"].to_numpy()[cust]
    rating = np.where(rng.random(n) < 0.35, cust_rating, rng.integers(1, 6, n)).astype(np.int64)
    prior = prior_all[cust]
    gender = customers["gender"].to_numpy()[cust]
    importance = products["importance"].to_numpy()[prod]

    features = ShippingFeatures(discount, weight, calls, cost, prior, importance, block, mode)
    late = rng.random(n) < late_probability(features, calibrated_intercept(features))
    dates = _fulfillment_days(rng, order_day, mode, late)
    status, ship_known, delivered, is_late = _status(dates, late, ORDER_WINDOW_DAYS - 1)
    payment = _payment_status(rng, status, late)

    # Sort by order date (ties random) so ids increase with time.
    order = np.lexsort((rng.random(n), order_day))
    carrier, tracking = _carriers_and_tracking(rng, mode)
    value = round_money(cost * qty * (1 - discount / 100))
    nat = np.datetime64("NaT")
    frame = pd.DataFrame(
        {
            "order_id": [f"ORD-{i:06d}" for i in range(1, n + 1)],
            "customer_id": customers["customer_id"].to_numpy()[cust][order],
            "store_id": stores["store_id"].to_numpy()[store][order],
            "sku": products["sku"].to_numpy()[prod][order],
            "quantity": qty[order],
            "order_date": day_numbers_to_dates(order_day, day0)[order],
            "promised_delivery_date": day_numbers_to_dates(dates["promised"], day0)[order],
            "ship_date": np.where(ship_known, day_numbers_to_dates(dates["ship"], day0), nat)[order],
            "delivery_date": np.where(delivered, day_numbers_to_dates(dates["delivery"], day0), nat)[order],
            "warehouse_block": block[order].astype(object),
            "mode_of_shipment": mode[order].astype(object),
            "carrier_name": carrier[order],
            "tracking_id": tracking[order],
            "customer_care_calls": calls[order],
            "customer_rating": rating[order],
            "prior_purchases": prior[order].astype(np.int64),
            "gender": gender[order].astype(object),
            "product_importance": importance[order].astype(object),
            "cost_of_product": cost[order],
            "discount_offered": discount[order],
            "weight_in_gms": weight[order],
            "order_value": value[order],
            "payment_status": payment[order],
            "order_status": status[order],
            "is_late": is_late[order],
        }
    )
    for col in ("ship_date", "delivery_date"):
        frame[col] = frame[col].astype("datetime64[ns]")
    return frame


def _fulfillment_days(
    rng: np.random.Generator, order_day: np.ndarray, mode: np.ndarray, late: np.ndarray
) -> dict[str, np.ndarray]:
    """Promised, ship and delivery day numbers; delivery is after the promise exactly when ``late``."""
    n = order_day.size
    sla = np.select([mode == "Flight", mode == "Road"], [SLA_DAYS["Flight"], SLA_DAYS["Road"]], SLA_DAYS["Ship"])
    promised = order_day + PROCESSING_ALLOWANCE_DAYS + sla
    proc = rng.choice(3, size=n, p=[0.35, 0.45, 0.20])
    delay = np.minimum(1 + rng.geometric(0.38, n) - 1, 15)
    slack = rng.choice(4, size=n, p=[0.45, 0.30, 0.15, 0.10])
    earliest = order_day + proc + 1
    delivery = np.where(late, promised + delay, np.maximum(earliest, promised - slack))
    # Some late orders were late leaving the warehouse, not only in transit.
    held = late & (rng.random(n) < 0.4)
    ship = order_day + proc + np.where(held, np.floor(rng.random(n) * delay).astype(np.int64), 0)
    ship = np.minimum(ship, delivery - 1)
    return {"promised": promised, "ship": ship, "delivery": delivery}


def _status(
    days: dict[str, np.ndarray], late: np.ndarray, today: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, pd.arrays.BooleanArray]:
    """Order status as seen on ``today`` (a day number), which dates are known, and nullable ``is_late``."""
    delivered = days["delivery"] <= today
    shipped = days["ship"] <= today
    overdue = ~delivered & (days["promised"] < today)
    status = np.select([delivered, overdue, shipped], ["delivered", "delayed", "shipped"], "processing")
    is_late = pd.arrays.BooleanArray(np.where(delivered, late, overdue), mask=~(delivered | overdue))
    return status.astype(object), shipped, delivered, is_late


def _payment_status(rng: np.random.Generator, status: np.ndarray, late: np.ndarray) -> np.ndarray:
    """Mostly paid; pending while processing; a few refunds, more often for late deliveries."""
    u = rng.random(status.size)
    refund_p = np.where(status == "delivered", np.where(late, 0.06, 0.015), np.where(status == "delayed", 0.05, 0))
    pending_p = np.select([status == "processing", status == "shipped", status == "delayed"], [0.30, 0.05, 0.05], 0.005)
    out = np.where(u < refund_p, "refunded", np.where(u < refund_p + pending_p, "pending", "paid"))
    return out.astype(object)


def _carriers_and_tracking(rng: np.random.Generator, mode: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A made-up carrier per order (by mode) and a unique tracking id (carrier prefix + 10 digits)."""
    n = mode.size
    which = rng.integers(0, 2, n)
    carrier = np.empty(n, dtype=object)
    prefix = np.empty(n, dtype=object)
    for m, options in CARRIERS.items():
        for k, (name, pre) in enumerate(options):
            sel = (mode == m) & (which == k)
            carrier[sel] = name
            prefix[sel] = pre
    digits = 1_000_000_000 + rng.choice(9_000_000_000, size=n, replace=False)
    tracking = np.array([f"{p}{d}" for p, d in zip(prefix, digits, strict=True)], dtype=object)
    return carrier, tracking
