"""Customer analytics over orders: RFM, K-Means segments, lifetime value, churn risk and recommendations.

Everything is pure (pandas, numpy, scikit-learn) and every result carries ``how``: one sentence on the method,
its parameters and the as-of date, so an answer built on it can say how it was computed.

**RFM** (:func:`rfm_table`). Per customer, as of the data's today: ``recency_days`` = days since the last order,
``frequency`` = orders, ``monetary`` = the sum of ``order_value``, ``first_order`` / ``last_order``,
``purchase_days`` = distinct days with an order and ``mean_gap_days`` = (last - first purchase day) /
(purchase days - 1), NaN for a customer who bought on one day only. Indexed by ``customer_id``.

**Segments** (:func:`fit_segments`). K-Means (``n_init=10``, ``random_state=seed``) on ``log1p`` of recency,
frequency and monetary, each standardised to mean 0 and variance 1 (the logs tame the long tails of frequency
and spend, so a few big spenders do not own a cluster). Clusters are named from their centroids in that
standardised space: the *recency score* is minus the recency z (positive = ordered more recently than average)
and the *value score* the mean of the frequency and monetary z. Each score falls in a band (``>= 0.3`` high,
``<= -0.3`` low, else mid) and the pair picks the name:

    recency \\ value    high          mid                   low
    high               champions     potential loyalists   new customers
    mid                loyal         need attention        about to sleep
    low                at risk       slipping away         hibernating

A low-recency centroid whose value score is at or below -1.0 is "lost" instead of "hibernating".
Segments are numbered by recency score + value score, best first; a name that a better segment already took
gets a number ("loyal 2"). The silhouette score (same standardised space) says how well separated they are;
centroids are reported back in original units (``expm1`` of the centroid's logs, a geometric-mean-like
typical member), with the plain means beside them. :meth:`Segmentation.assign` places new RFM rows.

**Lifetime value** (:func:`clv`), undiscounted order value over ``horizon_days``, per customer::

    x = purchase days - 1 (repeat purchases), T = days from the first purchase to the as-of date
    population rate      r0 = sum(x) / sum(T)                        (repeat purchases per customer-day)
    purchase rate        r  = (x + a) / (T + a / r0)                 (a = prior_purchases, default 2)
    value per purchase   v  = (monetary + m * v0) / (purchase days + m)   (v0 = population mean, m = 1)
    P(still active)      p  = q e^(-r R) / (q e^(-r R) + 1 - q)      (R = recency days, q = prior_active 0.9)
    clv                     = p * r * horizon_days * v

The rate is a Gamma-Poisson posterior mean: the customer's own repeat rate, counted with ``a`` extra purchases
at the population's rate, so a customer with few purchases stays near the population and one with many
speaks for themselves. ``r R`` is the recency measured in the customer's typical gaps ``1 / r``; an active
customer goes that long without a purchase with probability ``e^(-r R)``, and Bayes' rule with prior
``q`` of being active gives ``p``. Assumptions: an active customer buys at a constant rate (Poisson) and keeps
doing so over the horizon; a customer who stopped does not return; spend per purchase does not depend on the
rate; values are revenue (order value, net of discounts) without margin or discounting.

**Churn risk** (:func:`churn_risk`). The customer's usual gap is their mean gap between purchase days counted
with ``prior_gaps`` (1) extra gap of the population's median gap (the median ``mean_gap_days`` of repeat
customers), and exactly the population's median for a customer who bought on one day only. With
``ratio = recency_days / usual gap`` a customer is at risk when ``ratio > threshold`` (2.0: silent for more than
twice their usual gap); the score ``ratio^2 / (ratio^2 + threshold^2)`` is 0 right after a purchase, 0.5 at the
threshold and tends to 1.

**Recommendations** (:func:`recommend`). Item-based collaborative filtering: each item is the set of customers
who bought it (bought or not; quantities ignored), two items' similarity is the cosine
``|both| / sqrt(|A| |B|)``, and an item the customer has not bought scores the sum of its similarities to the
items they bought; the reason names the strongest link with its co-purchase count. Items without any
co-purchase link fill the remaining places by popularity (distinct buyers, then units, then sku): first those
in the categories the customer buys from, then any; the reason says there was no co-purchase signal.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Final, Literal

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
from sklearn.preprocessing import StandardScaler

from ml.errors import InputError

log = logging.getLogger(__name__)

ORDER_COLUMNS: Final = ("customer_id", "order_date", "order_value")
PURCHASE_COLUMNS: Final = ("customer_id", "sku", "quantity")
PRODUCT_COLUMNS: Final = ("sku", "name", "category")
RFM_COLUMNS: Final = (
    "recency_days", "frequency", "monetary", "first_order", "last_order", "mean_gap_days", "purchase_days",
)  # fmt: skip
NAMING_BAND: Final = 0.3
"""A centroid's recency or value score at or beyond +-this (in standard deviations) is high / low."""
LOST_BAND: Final = 1.0
"""A centroid of low recency whose value score is at or below -this is "lost" rather than "hibernating"."""
SEGMENT_NAMES: Final = {
    ("high", "high"): "champions", ("high", "mid"): "potential loyalists", ("high", "low"): "new customers",
    ("mid", "high"): "loyal", ("mid", "mid"): "need attention", ("mid", "low"): "about to sleep",
    ("low", "high"): "at risk", ("low", "mid"): "slipping away", ("low", "low"): "hibernating",
}  # fmt: skip
"""Segment name by (recency band, value band) of the centroid."""
MAX_K: Final = 12
MAX_RECOMMENDATIONS: Final = 100
SILHOUETTE_SAMPLE: Final = 5000
"""Above this many customers the silhouette is computed on a seeded sample of them."""

Source = Literal["co_purchase", "popular_in_category", "popular"]


# -- input checks ------------------------------------------------------------------------------------------


def _require_columns(frame: Any, columns: Iterable[str], what: str) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        raise InputError(f"{what} must be a DataFrame, got {type(frame).__name__}", field=what)
    wanted = list(columns)
    for name in wanted:
        if name not in frame.columns:
            raise InputError(f"{what} has no {name} column", field=name, allowed=wanted)
    return frame


def _as_date(value: Any, name: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, pd.Timestamp) and not pd.isna(value):
        return value.date()
    raise InputError(f"must be a date, got {value!r}", field=name)


def _integers(values: pd.Series, name: str) -> pd.Series:
    numbers = pd.to_numeric(values, errors="coerce")
    bad = numbers.isna() | ~np.isfinite(numbers.astype(float)) | (numbers.astype(float) % 1 != 0)
    if bad.any():
        raise InputError(f"must be whole numbers; {int(bad.sum())} value(s) are not", field=name)
    return numbers.astype("int64")


def _non_negative(values: pd.Series, name: str) -> pd.Series:
    numbers = pd.to_numeric(values, errors="coerce").astype(float)
    bad = numbers.isna() | ~np.isfinite(numbers) | (numbers < 0)
    if bad.any():
        raise InputError(f"must be finite numbers >= 0; {int(bad.sum())} value(s) are not", field=name)
    return numbers


def _checked_int(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or not low <= int(value) <= high:
        raise InputError(f"must be an integer from {low} to {high}, got {value!r}", field=name)
    return int(value)


def _checked_float(value: Any, name: str, low: float, high: float, *, open_low: bool = False) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(float(value))
    if ok:
        number = float(value)
        ok = (number > low if open_low else number >= low) and number <= high
    if not ok:
        bound = "above" if open_low else "from"
        raise InputError(f"must be a number {bound} {low} up to {high}, got {value!r}", field=name)
    return float(value)


def _orders_frame(orders: Any, as_of: date) -> pd.DataFrame:
    frame = _require_columns(orders, ORDER_COLUMNS, "orders")
    out = pd.DataFrame({"customer_id": _integers(frame["customer_id"], "customer_id")})
    days = pd.to_datetime(frame["order_date"], errors="coerce")
    if days.isna().any():
        raise InputError(f"must be dates; {int(days.isna().sum())} value(s) are not", field="order_date")
    out["order_date"] = days.dt.normalize()
    late = out["order_date"] > pd.Timestamp(as_of)
    if late.any():
        raise InputError(f"{int(late.sum())} order(s) fall after the as-of date {as_of}", field="order_date")
    out["order_value"] = _non_negative(frame["order_value"], "order_value")
    return out


def _rfm_frame(rfm: Any) -> pd.DataFrame:
    frame = _require_columns(rfm, ("recency_days", "frequency", "monetary"), "rfm")
    for name in ("recency_days", "frequency", "monetary"):
        _non_negative(frame[name], name)
    return frame


# -- RFM ---------------------------------------------------------------------------------------------------


def rfm_how(as_of: date, n_orders: int) -> str:
    return (
        f"RFM per customer from {n_orders} orders as of {as_of}: recency = days since the last order, frequency ="
        " orders, monetary = sum of order value, mean gap = days from the first to the last purchase day /"
        " (purchase days - 1)"
    )


def rfm_table(orders: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """Recency, frequency and monetary value per customer (index ``customer_id``, ascending).

    Columns :data:`RFM_COLUMNS`; ``attrs`` holds ``as_of`` and ``how``. Orders after ``as_of`` are an error.
    """
    day = _as_date(as_of, "as_of")
    frame = _orders_frame(orders, day)
    grouped = frame.groupby("customer_id", sort=True)
    out = pd.DataFrame(
        {
            "first_order": grouped["order_date"].min(),
            "last_order": grouped["order_date"].max(),
            "frequency": grouped.size().astype("int64"),
            "monetary": grouped["order_value"].sum().round(2),
            "purchase_days": grouped["order_date"].nunique().astype("int64"),
        }
    )
    out["recency_days"] = (pd.Timestamp(day) - out["last_order"]).dt.days.astype("int64")
    span = (out["last_order"] - out["first_order"]).dt.days.astype(float)
    gaps = (out["purchase_days"] - 1).astype(float)
    out["mean_gap_days"] = (span / gaps.where(gaps > 0)).astype(float)
    out = out[list(RFM_COLUMNS)]
    out.index.name = "customer_id"
    out.attrs.update(as_of=day, how=rfm_how(day, len(frame)))
    return out


def _as_of_of(rfm: pd.DataFrame) -> date | None:
    value = rfm.attrs.get("as_of")
    return value if isinstance(value, date) else None


def _as_of_text(as_of: date | None) -> str:
    return f"as of {as_of}" if as_of is not None else "as of the data's last day"


# -- segments ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    """One K-Means cluster, named from its centroid (``segment_id`` 0 is the best by recency + value score)."""

    segment_id: int
    name: str
    size: int
    share: float
    recency_score: float  # minus the centroid's recency z: positive = more recent than average
    value_score: float  # mean of the centroid's frequency and monetary z
    centroid_recency_days: float  # the centroid back in original units (expm1 of its logs)
    centroid_frequency: float
    centroid_monetary: float
    mean_recency_days: float
    mean_frequency: float
    mean_monetary: float
    description: str


@dataclass(frozen=True)
class Segmentation:
    """A fitted segmentation: segments best first, each customer's segment name, silhouette, how."""

    k: int
    seed: int
    as_of: date | None
    segments: tuple[Segment, ...]
    silhouette: float | None
    labels: pd.Series = field(compare=False, repr=False)  # customer_id -> segment name
    how: str
    scaler: StandardScaler = field(compare=False, repr=False)
    model: KMeans = field(compare=False, repr=False)
    segment_of_cluster: tuple[int, ...] = field(repr=False)  # K-Means label -> segment_id

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.segments]

    def segment(self, name: str) -> Segment:
        for seg in self.segments:
            if seg.name == name:
                return seg
        raise InputError(f"no segment named {name!r}", field="segment", allowed=self.names)

    def assign(self, rfm: pd.DataFrame) -> pd.Series:
        """The segment name of each row of ``rfm`` (same index), by the nearest fitted centroid."""
        frame = _rfm_frame(rfm)
        if frame.empty:
            return pd.Series([], index=frame.index, dtype=object, name="segment")
        clusters = self.model.predict(self.scaler.transform(_log_features(frame)))
        names = [self.segments[self.segment_of_cluster[c]].name for c in clusters]
        return pd.Series(names, index=frame.index, dtype=object, name="segment")


def _log_features(rfm: pd.DataFrame) -> np.ndarray:
    values = rfm[["recency_days", "frequency", "monetary"]].to_numpy(dtype=float)
    return np.log1p(values)


def _band(score: float) -> str:
    if score >= NAMING_BAND:
        return "high"
    return "low" if score <= -NAMING_BAND else "mid"


def segment_name(recency_score: float, value_score: float) -> str:
    """The name of a centroid with these scores (see the module docstring's table)."""
    if recency_score <= -NAMING_BAND and value_score <= -LOST_BAND:
        return "lost"
    return SEGMENT_NAMES[(_band(recency_score), _band(value_score))]


def _unique_names(base: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in base:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name} {seen[name]}")
    return out


def _describe(name: str, size: int, share: float, centroid: np.ndarray) -> str:
    recency, frequency, monetary = centroid
    return (
        f"{name}: {size} customers ({share:.0%}); a typical member last ordered {recency:.0f} days ago, placed "
        f"{frequency:.1f} orders and spent {monetary:,.2f}"
    )


def _silhouette(z: np.ndarray, labels: np.ndarray, seed: int) -> float | None:
    if not 2 <= len(np.unique(labels)) < len(labels):
        return None
    sample = SILHOUETTE_SAMPLE if len(labels) > SILHOUETTE_SAMPLE else None
    return float(silhouette_score(z, labels, sample_size=sample, random_state=seed))


def _segments_from_fit(
    rfm: pd.DataFrame, z: np.ndarray, clusters: np.ndarray, scaler: StandardScaler, model: KMeans
) -> tuple[list[Segment], list[int]]:
    centers = model.cluster_centers_
    r_score = -centers[:, 0]
    v_score = centers[:, 1:].mean(axis=1)
    order = sorted(range(len(centers)), key=lambda c: (-(r_score[c] + v_score[c]), -r_score[c], c))
    names = _unique_names([segment_name(r_score[c], v_score[c]) for c in order])
    originals = np.expm1(scaler.inverse_transform(centers))
    segments = []
    for seg_id, (cluster, name) in enumerate(zip(order, names, strict=True)):
        members = rfm[clusters == cluster]
        size = len(members)
        share = size / len(rfm)
        segments.append(Segment(
            segment_id=seg_id, name=name, size=size, share=round(share, 4),
            recency_score=round(float(r_score[cluster]), 4), value_score=round(float(v_score[cluster]), 4),
            centroid_recency_days=round(float(originals[cluster, 0]), 2),
            centroid_frequency=round(float(originals[cluster, 1]), 2),
            centroid_monetary=round(float(originals[cluster, 2]), 2),
            mean_recency_days=round(float(members["recency_days"].mean()), 2),
            mean_frequency=round(float(members["frequency"].mean()), 2),
            mean_monetary=round(float(members["monetary"].mean()), 2),
            description=_describe(name, size, share, originals[cluster]),
        ))  # fmt: skip
    segment_of_cluster = [0] * len(centers)
    for seg_id, cluster in enumerate(order):
        segment_of_cluster[cluster] = seg_id
    return segments, segment_of_cluster


def fit_segments(rfm: pd.DataFrame, k: int = 4, seed: int = 7) -> Segmentation:
    """K-Means segments of the customers of an RFM table (see the module docstring)."""
    frame = _rfm_frame(rfm)
    k = _checked_int(k, "k", 2, MAX_K)
    seed = _checked_int(seed, "seed", 0, 2**32 - 1)
    features = _log_features(frame)
    distinct = len(np.unique(features, axis=0)) if len(features) else 0
    if distinct < k:
        raise InputError(f"{k} segments need at least {k} distinct customers, got {distinct}", field="k")
    scaler = StandardScaler().fit(features)
    z = scaler.transform(features)
    model = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(z)
    clusters = model.labels_
    segments, segment_of_cluster = _segments_from_fit(frame, z, clusters, scaler, model)
    silhouette = _silhouette(z, clusters, seed)
    labels = pd.Series([segments[segment_of_cluster[c]].name for c in clusters], index=frame.index,
                       dtype=object, name="segment")  # fmt: skip
    as_of = _as_of_of(frame)
    sil = f"{silhouette:.3f}" if silhouette is not None else "n/a"
    how = (
        f"K-Means (k={k}, seed={seed}, 10 starts) on standardised log(1+x) recency, frequency and monetary of "
        f"{len(frame)} customers {_as_of_text(as_of)}; segments named from the centroid's recency score (minus "
        f"the recency z) and value score (mean frequency/monetary z), bands +-{NAMING_BAND}; silhouette {sil}"
    )
    log.debug("segments fitted: %s", ", ".join(f"{s.name}={s.size}" for s in segments))
    return Segmentation(k=k, seed=seed, as_of=as_of, segments=tuple(segments), silhouette=silhouette,
                        labels=labels, how=how, scaler=scaler, model=model,
                        segment_of_cluster=tuple(segment_of_cluster))  # fmt: skip


# -- lifetime value ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClvResult:
    """Per customer (index ``customer_id``): ``repeat_purchases``, ``observed_days``, ``own_rate_per_day``
    (NaN when observed 0 days), ``rate_per_day`` (shrunk), ``purchases_if_active``, ``value_per_purchase``,
    ``p_active``, ``clv``; with the population figures and parameters used."""

    table: pd.DataFrame = field(compare=False)
    horizon_days: int
    prior_purchases: float
    value_prior_purchases: float
    prior_active: float
    population_rate_per_day: float
    population_value_per_purchase: float
    as_of: date | None
    how: str


def _population_rate(repeats: pd.Series, observed: pd.Series) -> float:
    total_days = float(observed.sum())
    if total_days <= 0:
        raise InputError("no customer has any history before the as-of date", field="recency_days")
    return float(repeats.sum()) / total_days


def p_active(rate_per_day: np.ndarray | float, recency_days: np.ndarray | float, prior_active: float) -> Any:
    """P(still active | no purchase for ``recency_days``) for a Poisson buyer at ``rate_per_day``."""
    stay = prior_active * np.exp(-np.asarray(rate_per_day, dtype=float) * np.asarray(recency_days, dtype=float))
    return stay / (stay + (1.0 - prior_active))


def clv(
    rfm: pd.DataFrame,
    *,
    horizon_days: int = 365,
    prior_purchases: float = 2.0,
    value_prior_purchases: float = 1.0,
    prior_active: float = 0.9,
) -> ClvResult:
    """Customer lifetime value over ``horizon_days`` and its parts (formula in the module docstring)."""
    frame = _require_columns(_rfm_frame(rfm), ("first_order", "last_order", "purchase_days"), "rfm")
    horizon_days = _checked_int(horizon_days, "horizon_days", 1, 3650)
    a = _checked_float(prior_purchases, "prior_purchases", 0.0, 1000.0, open_low=True)
    m = _checked_float(value_prior_purchases, "value_prior_purchases", 0.0, 1000.0)
    q = _checked_float(prior_active, "prior_active", 0.0, 1.0, open_low=True)
    visits = frame["purchase_days"].astype(float)
    repeats = visits - 1
    span = (pd.to_datetime(frame["last_order"]) - pd.to_datetime(frame["first_order"])).dt.days.astype(float)
    observed = frame["recency_days"].astype(float) + span
    rate0 = _population_rate(repeats, observed)
    value0 = float(frame["monetary"].sum()) / float(visits.sum())
    rate = (repeats + a) * rate0 / (observed * rate0 + a)
    value = (frame["monetary"].astype(float) + m * value0) / (visits + m)
    alive = p_active(rate.to_numpy(), frame["recency_days"].to_numpy(), q)
    purchases = rate * horizon_days
    table = pd.DataFrame(
        {
            "repeat_purchases": repeats.astype("int64"),
            "observed_days": observed.astype("int64"),
            "own_rate_per_day": (repeats / observed.where(observed > 0)).round(6),
            "rate_per_day": rate.round(6),
            "purchases_if_active": purchases.round(3),
            "value_per_purchase": value.round(2),
            "p_active": pd.Series(alive, index=frame.index).round(4),
            "clv": (alive * purchases * value).round(2),
        },
        index=frame.index,
    )
    as_of = _as_of_of(frame)
    how = (
        f"CLV over {horizon_days} days {_as_of_text(as_of)}, revenue undiscounted: P(active) x expected purchase "
        f"days x value per purchase; rate = (repeat purchases + {a:g}) / (days observed + {a:g} / {rate0:.5f}), "
        f"the population rate; value per purchase shrunk with {m:g} purchase(s) of the population's "
        f"{value0:,.2f}; P(active) = {q:g} e^(-rate x recency) / ({q:g} e^(-rate x recency) + {1 - q:g})"
    )
    return ClvResult(table=table, horizon_days=horizon_days, prior_purchases=a, value_prior_purchases=m,
                     prior_active=q, population_rate_per_day=rate0, population_value_per_purchase=value0,
                     as_of=as_of, how=how)  # fmt: skip


# -- churn -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChurnResult:
    """Per customer (index ``customer_id``): ``usual_gap_days``, ``gap_basis`` (``own`` / ``population``),
    ``overdue_ratio``, ``score`` (0-1), ``at_risk``, ``reason``; with the threshold and population gap."""

    table: pd.DataFrame = field(compare=False)
    threshold: float
    prior_gaps: float
    population_gap_days: float
    population_gap_basis: str  # "median gap of repeat customers" or "data window" when nobody bought twice
    as_of: date | None
    how: str


def _population_gap(frame: pd.DataFrame) -> tuple[float, str]:
    gaps = pd.to_numeric(frame["mean_gap_days"], errors="coerce")
    repeat = gaps[(frame["purchase_days"] > 1) & gaps.notna()]
    if len(repeat):
        return max(float(repeat.median()), 1.0), "median gap of repeat customers"
    span = (pd.to_datetime(frame["last_order"]) - pd.to_datetime(frame["first_order"])).dt.days
    window = float((frame["recency_days"] + span).max()) if len(frame) else 1.0
    return max(window, 1.0), "data window (nobody bought on two days)"


@dataclass(frozen=True)
class _ChurnRule:
    threshold: float
    prior_gaps: float
    population_gap: float

    def reason(self, recency: int, gap: float, ratio: float, gaps: int) -> str:
        verdict = "at risk" if ratio > self.threshold else "not at risk"
        if gaps == 0:
            basis = f"the population's usual gap of {gap:.1f} days (bought on one day only)"
        else:
            basis = (f"the usual gap of {gap:.1f} days (own mean over {gaps} gap(s), with {self.prior_gaps:g} "
                     f"gap(s) of the population's {self.population_gap:.1f} days)")  # fmt: skip
        return f"{verdict}: last order {recency} days ago, {ratio:.1f}x {basis}; threshold {self.threshold:g}x"


def churn_risk(rfm: pd.DataFrame, *, threshold: float = 2.0, prior_gaps: float = 1.0) -> ChurnResult:
    """Flag customers silent for more than ``threshold`` x their usual gap (rule in the module docstring)."""
    frame = _require_columns(_rfm_frame(rfm), ("mean_gap_days", "purchase_days", "first_order", "last_order"),
                             "rfm")  # fmt: skip
    threshold = _checked_float(threshold, "threshold", 0.0, 100.0, open_low=True)
    prior_gaps = _checked_float(prior_gaps, "prior_gaps", 0.0, 1000.0)
    pop_gap, pop_basis = _population_gap(frame)
    gaps = (frame["purchase_days"].astype("int64") - 1).clip(lower=0)
    own_span = pd.to_numeric(frame["mean_gap_days"], errors="coerce").fillna(0.0) * gaps
    weight = gaps + prior_gaps
    usual = ((own_span + prior_gaps * pop_gap) / weight.where(weight > 0)).fillna(pop_gap)
    usual = usual.where(gaps > 0, pop_gap).clip(lower=1.0)
    recency = frame["recency_days"].astype(float)
    ratio = recency / usual
    score = ratio**2 / (ratio**2 + threshold**2)
    rule = _ChurnRule(threshold, prior_gaps, pop_gap)
    reasons = [rule.reason(int(r), g, q, int(n)) for r, g, q, n in zip(recency, usual, ratio, gaps, strict=True)]
    table = pd.DataFrame(
        {
            "usual_gap_days": usual.round(2),
            "gap_basis": np.where(gaps > 0, "own", "population"),
            "overdue_ratio": ratio.round(3),
            "score": score.round(4),
            "at_risk": ratio > threshold,
            "reason": reasons,
        },
        index=frame.index,
    )
    as_of = _as_of_of(frame)
    how = (
        f"churn rule {_as_of_text(as_of)}: at risk when the days since the last order exceed {threshold:g}x the "
        f"customer's usual gap between purchase days (their mean gap counted with {prior_gaps:g} extra gap of the "
        f"population's {pop_gap:.1f} days, the {pop_basis}; that population gap for one-day buyers); score = "
        f"ratio^2 / (ratio^2 + {threshold:g}^2), 0.5 at the threshold"
    )
    return ChurnResult(table=table, threshold=threshold, prior_gaps=prior_gaps, population_gap_days=pop_gap,
                       population_gap_basis=pop_basis, as_of=as_of, how=how)  # fmt: skip


# -- recommendations ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recommendation:
    """One item to suggest: ``score`` is the summed co-purchase cosine (``co_purchase``) or the share of
    customers who bought it (popularity fallbacks); ``reason`` says why, with the numbers."""

    sku: int
    score: float
    reason: str
    source: Source
    name: str | None = None
    category: str | None = None
    how: str = ""


@dataclass(frozen=True)
class _Catalog:
    names: dict[int, str]
    categories: dict[int, str]

    def label(self, sku: int) -> str:
        name = self.names.get(sku)
        return f"{name} (sku {sku})" if name else f"sku {sku}"


def _purchases_frame(purchases: Any) -> pd.DataFrame:
    frame = _require_columns(purchases, PURCHASE_COLUMNS, "purchases")
    out = pd.DataFrame({
        "customer_id": _integers(frame["customer_id"], "customer_id"),
        "sku": _integers(frame["sku"], "sku"),
        "quantity": _non_negative(frame["quantity"], "quantity"),
    })  # fmt: skip
    if (out["quantity"] <= 0).any():
        raise InputError("must be above 0", field="quantity")
    return out


def _catalog(products: Any) -> _Catalog:
    if products is None:
        return _Catalog({}, {})
    frame = _require_columns(products, PRODUCT_COLUMNS, "products")
    skus = _integers(frame["sku"], "sku").tolist()
    return _Catalog(dict(zip(skus, frame["name"].astype(str), strict=True)),
                    dict(zip(skus, frame["category"].astype(str), strict=True)))  # fmt: skip


def _recommend_how(n_customers: int, n_items: int, as_of: date | None, k: int) -> str:
    when = f" as of {as_of}" if as_of is not None else ""
    return (
        f"item-based collaborative filtering{when}: cosine similarity of items over the sets of the "
        f"{n_customers} customers who bought them ({n_items} items, quantities ignored); score = sum of the "
        f"similarities to the customer's items, items already bought excluded, top {k}; items without a "
        "co-purchase link filled by popularity (distinct buyers) in the customer's categories, then overall"
    )


def _customers(n: int) -> str:
    return f"{n} customer" if n == 1 else f"{n} customers"


def _popularity(frame: pd.DataFrame) -> pd.DataFrame:
    """Items by distinct buyers, then units, then sku: columns ``buyers``, ``units``, ``share``."""
    grouped = frame.groupby("sku")
    table = pd.DataFrame({"buyers": grouped["customer_id"].nunique(), "units": grouped["quantity"].sum()})
    table["share"] = table["buyers"] / frame["customer_id"].nunique()
    table = table.reset_index().sort_values(["buyers", "units", "sku"], ascending=[False, False, True])
    return table.set_index("sku")


def _popular_fill(
    frame: pd.DataFrame, catalog: _Catalog, exclude: Collection[int], categories: Collection[str], k: int, how: str
) -> list[Recommendation]:
    out: list[Recommendation] = []
    table = _popularity(frame)
    taken = set(exclude)
    tiers: list[tuple[Source, Collection[str] | None]] = [("popular_in_category", categories), ("popular", None)]
    for source, wanted in tiers:
        if source == "popular_in_category" and not categories:
            continue
        for sku, row in table.iterrows():
            sku = int(sku)
            category = catalog.categories.get(sku)
            if len(out) >= k:
                break
            if sku in taken or (wanted is not None and category not in wanted):
                continue
            taken.add(sku)
            buyers = int(row["buyers"])
            if source == "popular_in_category":
                reason = (f"popular in {category}, a category this customer buys from: bought by "
                          f"{_customers(buyers)} (no co-purchase signal)")  # fmt: skip
            else:
                reason = f"popular overall: bought by {_customers(buyers)} (no co-purchase signal)"
            out.append(Recommendation(sku=sku, score=round(float(row["share"]), 4), reason=reason, source=source,
                                      name=catalog.names.get(sku), category=category, how=how))  # fmt: skip
    return out


def popular_items(
    purchases: pd.DataFrame,
    *,
    k: int = 5,
    products: pd.DataFrame | None = None,
    categories: Collection[str] = (),
    exclude: Collection[int] = (),
    as_of: date | None = None,
) -> list[Recommendation]:
    """The most popular items (distinct buyers), those in ``categories`` first; for a customer with no
    purchases yet."""
    frame = _purchases_frame(purchases)
    k = _checked_int(k, "k", 1, MAX_RECOMMENDATIONS)
    when = f" as of {as_of}" if as_of is not None else ""
    how = (f"popularity{when}: items by distinct buyers among {frame['customer_id'].nunique()} customers "
           "(then units, then sku)")  # fmt: skip
    return _popular_fill(frame, _catalog(products), set(exclude), set(categories), k, how)


def _co_purchase(frame: pd.DataFrame) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Items, the item x item co-purchase counts (customers who bought both) and cosine similarities."""
    bought = pd.crosstab(frame["customer_id"], frame["sku"]).clip(upper=1)
    items = [int(s) for s in bought.columns]
    matrix = bought.to_numpy(dtype=float)
    counts = matrix.T @ matrix
    buyers = np.sqrt(np.diag(counts))
    cosine = counts / np.outer(buyers, buyers)
    return items, counts, cosine


def _co_purchase_recs(
    items: list[int], counts: np.ndarray, cosine: np.ndarray, own: set[int], catalog: _Catalog, how: str
) -> list[Recommendation]:
    mine = [i for i, sku in enumerate(items) if sku in own]
    scored = []
    for j, sku in enumerate(items):
        links = [i for i in mine if counts[i, j] > 0]
        if sku in own or not links:
            continue
        best = min(links, key=lambda i: (-cosine[i, j], -counts[i, j], items[i]))
        more = f"; linked to {len(links) - 1} more of their items" if len(links) > 1 else ""
        reason = (f"bought by {_customers(int(counts[best, j]))} who also bought {catalog.label(items[best])} "
                  f"(cosine {cosine[best, j]:.2f}){more}")  # fmt: skip
        scored.append((float(cosine[links, j].sum()), sku, reason))
    scored.sort(key=lambda t: (-t[0], t[1]))
    return [Recommendation(sku=sku, score=round(score, 4), reason=reason, source="co_purchase",
                           name=catalog.names.get(sku), category=catalog.categories.get(sku), how=how)
            for score, sku, reason in scored]  # fmt: skip


def recommend(
    customer_id: int,
    purchases: pd.DataFrame,
    *,
    k: int = 5,
    products: pd.DataFrame | None = None,
    as_of: date | None = None,
) -> list[Recommendation]:
    """Up to ``k`` items the customer has not bought, best first (method in the module docstring).

    A customer without purchases in ``purchases`` is an :class:`InputError` (use :func:`popular_items`).
    """
    frame = _purchases_frame(purchases)
    k = _checked_int(k, "k", 1, MAX_RECOMMENDATIONS)
    customer = _checked_int(customer_id, "customer_id", -(2**63), 2**63 - 1)
    own = set(frame.loc[frame["customer_id"] == customer, "sku"].astype(int))
    if not own:
        raise InputError(f"customer {customer} has no purchases to recommend from", field="customer_id")
    catalog = _catalog(products)
    items, counts, cosine = _co_purchase(frame)
    how = _recommend_how(frame["customer_id"].nunique(), len(items), as_of, k)
    recs = _co_purchase_recs(items, counts, cosine, own, catalog, how)[:k]
    if len(recs) < k:
        categories = {catalog.categories[s] for s in own if s in catalog.categories}
        taken = own | {r.sku for r in recs}
        recs += _popular_fill(frame, catalog, taken, categories, k - len(recs), how)
    return recs
