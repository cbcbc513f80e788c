"""Daily sales history, the promotion windows behind it, and the inventory snapshot it implies.

Demand per (store, sku, day) is ``base * trend * weekly * yearly * promo_lift`` with negative-binomial
(Poisson-gamma) count noise. Everything is vectorised over a (series x day) matrix.

Levels follow store x item retail data at this aggregation: most series sell tens of units a day (demo
seed: mean about 53, median series about 36), with a minority of slow movers (a few electronics, garden,
toy and apparel series at a few units a day, some with zero-sale days). The noise is moderately
over-dispersed: the gamma shape per category (20-80) gives a day-to-day variance of ``mu + mu**2 / shape``,
typically 1.5-3 times the Poisson variance. Promotions run on about one day in eight, each 5-14 days long
(a few per series and year) with a lift of ``(1 - discount) ** -elasticity``.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from ml.synth_catalog import CATEGORIES, CATEGORY_BY_NAME
from ml.synth_util import day_numbers_to_dates, round_money

WEEKDAY_SHAPE = np.array([-0.22, -0.30, -0.20, -0.08, 0.12, 0.45, 0.30])
"""Log-demand shape Monday..Sunday, scaled per category by ``weekly_amp`` (weekend peak for amp > 0)."""

PROMO_BLOCK_DAYS = 42
"""Each series' history is cut into blocks of this many days; a block holds at most one promotion."""

PROMO_LENGTH_RANGE = (5, 14)
"""Promotion windows last this many days (inclusive)."""

PROMO_PROBABILITY_RANGE = (0.35, 0.80)
"""Each series draws, from this range, the probability that one of its blocks holds a promotion."""


def _season_shape(doy: np.ndarray, peak_doy: int, sharpness: float) -> np.ndarray:
    """A yearly bump in (0, 1] peaking on ``peak_doy``; larger ``sharpness`` gives a narrower peak."""
    angle = 2 * np.pi * (doy - peak_doy) / 365.25
    return np.exp(sharpness * (np.cos(angle) - 1))


def _yearly_factor(doy: np.ndarray) -> np.ndarray:
    """(category x day) multiplicative yearly season, centred so its log averages 0 over a year."""
    grid = np.arange(1, 366)
    rows = []
    for prof in CATEGORIES:
        mean = _season_shape(grid, prof.yearly_peak_doy, prof.yearly_sharpness).mean()
        bump = _season_shape(doy, prof.yearly_peak_doy, prof.yearly_sharpness) - mean
        rows.append(np.exp(2 * prof.yearly_amp * bump))
    return np.vstack(rows)


def allowed_discount_steps(products: pd.DataFrame) -> np.ndarray:
    """Per product, how many 0.05 discount steps the category pricing rule allows.

    A discount must stay within the category's ``max_discount`` and keep the discounted margin
    ``(price * (1 - d) - cost) / (price * (1 - d))`` at or above the category's ``min_margin``. The
    category profiles guarantee at least one step (5 %) for every product.
    """
    price = products["unit_price"].to_numpy(dtype=float)
    cost = products["unit_cost"].to_numpy(dtype=float)
    prof = [CATEGORY_BY_NAME[c] for c in products["category"]]
    max_disc = np.array([c.max_discount for c in prof])
    min_margin = np.array([c.min_margin for c in prof])
    margin_cap = 1.0 - cost / (price * (1.0 - min_margin))
    steps = np.floor(np.minimum(max_disc, margin_cap) / 0.05 + 1e-9).astype(np.int64)
    return np.maximum(steps, 1)


def promotion_windows(
    rng: np.random.Generator, series_steps: np.ndarray, n_days: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Random non-overlapping promotion windows per series.

    Returns ``(series, start_day, length, discount)`` arrays. Each series gets a random phase and a
    promotion probability per 42-day block (about 3-7 promotions a year); discounts are multiples of
    0.05 from 0.05 up to ``series_steps`` steps (see :func:`allowed_discount_steps`). Windows may run past
    the last history day (a promotion that is still on), never before the first.
    """
    n_series = series_steps.size
    n_blocks = n_days // PROMO_BLOCK_DAYS + 2
    phase = rng.integers(0, PROMO_BLOCK_DAYS, n_series)
    p_promo = rng.uniform(*PROMO_PROBABILITY_RANGE, n_series)
    active = rng.random((n_series, n_blocks)) < p_promo[:, None]
    lo, hi = PROMO_LENGTH_RANGE
    length = rng.integers(lo, hi + 1, (n_series, n_blocks))
    offset = np.floor(rng.random((n_series, n_blocks)) * (PROMO_BLOCK_DAYS - length)).astype(np.int64)
    block_start = (np.arange(n_blocks)[None, :] - 1) * PROMO_BLOCK_DAYS + phase[:, None]
    start = block_start + offset
    steps = 1 + np.floor(rng.random((n_series, n_blocks)) * series_steps[:, None]).astype(np.int64)
    keep = active & (start >= 0) & (start < n_days)
    s_idx = np.broadcast_to(np.arange(n_series)[:, None], keep.shape)[keep]
    return s_idx, start[keep], length[keep], np.round(steps[keep] * 0.05, 3)


def _discount_matrix(
    n_series: int, n_days: int, series: np.ndarray, start: np.ndarray, length: np.ndarray, disc: np.ndarray
) -> np.ndarray:
    """(series x day) discount matrix with each window's discount on its in-history days."""
    out = np.zeros((n_series, n_days))
    total = int(length.sum())
    rep = np.repeat(np.arange(series.size), length)
    within = np.arange(total) - np.repeat(np.cumsum(length) - length, length)
    day = start[rep] + within
    ok = day < n_days
    out[series[rep][ok], day[ok]] = disc[rep][ok]
    return out


def make_sales_and_promotions(
    rng: np.random.Generator, stores: pd.DataFrame, products: pd.DataFrame, history_start: dt.date, n_days: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Daily sales for every (store, sku, day) of the history, and the promotions that drove them."""
    n_st, n_pr = len(stores), len(products)
    n_series = n_st * n_pr
    st_of = np.repeat(np.arange(n_st), n_pr)
    pr_of = np.tile(np.arange(n_pr), n_st)
    cat_names = products["category"].to_numpy()
    cat_of_product = np.array([[c.name for c in CATEGORIES].index(n) for n in cat_names])
    series_cat = cat_of_product[pr_of]
    prof_arr = {f: np.array([getattr(c, f) for c in CATEGORIES]) for f in (
        "base_units", "weekly_amp", "trend_per_year", "elasticity", "dispersion", "intermittent_share")}

    # Base level = store effect x item effect (cheaper items of a category sell more), some intermittent.
    size = stores["size_sqft"].to_numpy(dtype=float)
    store_eff = (size / 24_000) ** 0.6 * rng.lognormal(0.0, 0.15, n_st)
    price = products["unit_price"].to_numpy(dtype=float)
    cat_median = pd.Series(price).groupby(cat_of_product).transform("median").to_numpy()
    item_eff = prof_arr["base_units"][cat_of_product] * rng.lognormal(0.0, 0.4, n_pr) * (price / cat_median) ** -0.3
    intermittent = rng.random(n_series) < prof_arr["intermittent_share"][series_cat]
    base = store_eff[st_of] * item_eff[pr_of] * np.where(intermittent, rng.uniform(0.15, 0.40, n_series), 1.0)
    elasticity = prof_arr["elasticity"][cat_of_product] * rng.uniform(0.85, 1.15, n_pr)

    dates = np.datetime64(history_start, "D") + np.arange(n_days).astype("timedelta64[D]")
    dow = (dates.astype("int64") + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday
    doy = (dates - dates.astype("datetime64[Y]")).astype("int64") + 1
    years_to_end = (np.arange(n_days) - (n_days - 1)) / 365.25
    slope = prof_arr["trend_per_year"][series_cat] + rng.normal(0.0, 0.06, n_series)

    weekly = np.exp(prof_arr["weekly_amp"][:, None] * WEEKDAY_SHAPE[None, :])[:, dow]  # (category x day)
    yearly = _yearly_factor(doy)
    series, start, length, disc = promotion_windows(rng, allowed_discount_steps(products)[pr_of], n_days)
    discount = _discount_matrix(n_series, n_days, series, start, length, disc)
    lift = (1.0 - discount) ** -elasticity[pr_of][:, None]

    mu = base[:, None] * np.exp(slope[:, None] * years_to_end[None, :]) * weekly[series_cat] * yearly[series_cat]
    mu *= lift
    shape = prof_arr["dispersion"][series_cat][:, None]
    units = rng.poisson(mu * rng.gamma(shape, 1.0 / shape, mu.shape))

    store_ids = stores["store_id"].to_numpy()
    skus = products["sku"].to_numpy()
    sales = pd.DataFrame(
        {
            "date": np.tile(dates.astype("datetime64[ns]"), n_series),
            "store_id": np.repeat(store_ids[st_of], n_days),
            "sku": np.repeat(skus[pr_of], n_days),
            "units": units.ravel().astype(np.int64),
            "price": round_money(price[pr_of][:, None] * (1.0 - discount)).ravel(),
            "discount": np.round(discount, 3).ravel(),
        }
    )
    promotions = _promotions_frame(store_ids[st_of][series], skus[pr_of][series], start, length, disc,
                                   history_start)
    return sales, promotions


def _promotions_frame(
    store_id: np.ndarray, sku: np.ndarray, start: np.ndarray, length: np.ndarray, disc: np.ndarray,
    history_start: dt.date,
) -> pd.DataFrame:
    """The 'history' promotions ledger rows, ordered by (store, sku, start) with keys 'seed:promo:<n>'."""
    order = np.lexsort((start, sku, store_id))
    n = order.size
    return pd.DataFrame(
        {
            "idempotency_key": [f"seed:promo:{i}" for i in range(1, n + 1)],
            "store_id": store_id[order].astype(np.int64),
            "sku": sku[order].astype(np.int64),
            "discount": disc[order],
            "starts_on": day_numbers_to_dates(start[order], history_start),
            "ends_on": day_numbers_to_dates(start[order] + length[order] - 1, history_start),
            "source": "history",
            "actor": "seed",
            "policy_rule": "history",
            "thread_id": pd.Series([None] * n, dtype=object),
        }
    )


def make_inventory(
    rng: np.random.Generator, products: pd.DataFrame, sales: pd.DataFrame, recent_days: int = 28
) -> pd.DataFrame:
    """Stock snapshot at the end of history: on-hand cover vs. recent demand, some low or out of stock."""
    last = sales["date"].max()
    recent = sales[sales["date"] > last - pd.Timedelta(days=recent_days)]
    demand = recent.groupby(["store_id", "sku"], sort=True)["units"].mean()
    store_id = demand.index.get_level_values("store_id").to_numpy()
    sku = demand.index.get_level_values("sku").to_numpy()
    daily = demand.to_numpy()
    n = daily.size
    cat = products.set_index("sku").loc[sku, "category"].to_numpy()
    lt_lo = np.array([CATEGORY_BY_NAME[c].lead_time_range[0] for c in cat])
    lt_hi = np.array([CATEGORY_BY_NAME[c].lead_time_range[1] for c in cat])
    sku_base = {int(s): int(rng.integers(CATEGORY_BY_NAME[c].lead_time_range[0],
                                         CATEGORY_BY_NAME[c].lead_time_range[1] + 1))
                for s, c in zip(products["sku"], products["category"], strict=True)}
    lead = np.clip(np.array([sku_base[int(s)] for s in sku]) + rng.integers(-1, 2, n), lt_lo, lt_hi)

    state = rng.choice(3, size=n, p=[0.08, 0.14, 0.78])  # 0 out of stock, 1 low, 2 healthy
    cover = np.where(state == 1, rng.uniform(0.2, 0.9, n) * lead, rng.lognormal(np.log(lead + 12.0), 0.35))
    on_hand = np.where(state == 0, 0, np.ceil(daily * cover)).astype(np.int64)
    needs = on_hand < daily * (lead + 7)
    order_qty = np.ceil(np.maximum(daily, 0.2) * (lead + 14)).astype(np.int64)
    on_order = np.where(needs & (rng.random(n) < 0.7), order_qty, 0).astype(np.int64)
    return pd.DataFrame(
        {
            "store_id": store_id.astype(np.int64),
            "sku": sku.astype(np.int64),
            "on_hand": on_hand,
            "on_order": on_order,
            "lead_time_days": lead.astype(np.int64),
        }
    )
