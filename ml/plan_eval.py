"""Replay held-out days of sales history through replenishment policies and compare what they cost.

The last ``holdout_days`` of the history are held out. A deterministic sample of (store, item) series is
simulated day by day over them, once per policy, from the same start:

* start: on hand = the series' mean daily sales over the 28 days before the holdout x (lead time + review
  period), rounded; nothing on order. It is policy-neutral (no policy's forecast) and the same for all;
* plans are made at the start of every ``review_days``-th held-out day (the first on the first held-out day),
  from the sales *before* that day only (:meth:`Panel.head`; the promotion calendar, planned ahead, is known);
* each day: the orders placed ``lead`` days earlier arrive (an order with lead time 0 arrives at once), then on
  a plan day the policy orders, then the day's demand (the actual held-out sales) is served from stock:
  ``sold = min(demand, stock)``, the rest is lost, the ending stock carries over.

Policies:

1. ``ours``: :func:`ml.planning.plan_item` (order-up-to with the quantile safety stock and EOQ rounding) on
   the demand model's P50/P90. The model (one global LightGBM per quantile, the server's training settings,
   its horizon = the longest lead time + review) is fitted once on the days before the holdout, with early
   stopping then a refit on all of them, as :func:`ml.demand.train.train_demand` does; at each plan day it
   forecasts from the history up to that day. Its sales features end at least ``horizon`` days before each
   day forecast, so a forecast never needs (and the truncated panel never holds) a sale on or after the plan
   day. ``retrain_each_review`` refits at every plan day instead.
2. ``seasonal_naive``: order up to the seasonal-naive forecast's sum over lead time + review (day ``T + k`` is
   the same weekday of the last observed week, :func:`ml.demand.baselines.seasonal_naive`) plus a safety stock
   ``z(service level) x RMSE``, the RMSE of that same forecast's lead-time + review sum at every origin whose
   window ends before the plan day, over the ``error_window_days`` before it; quantity = the gap rounded up,
   no EOQ rounding.
3. ``rimas_rule``: the seed's stub, "order 50 when stock is low", read as: at a plan day, when the inventory
   position (on hand + on order) is below the lead-time demand, estimated as the mean daily sales of the last
   28 days x the lead time (at least one day), order 50 units; otherwise nothing.

A fourth row, not part of the goals, replays ``ours`` with forecasts that are not told the promotions
planned for the days they forecast (the calendar cut at the plan day, :func:`without_promotion_plan`): the
price of planning without the promotion calendar. It is shown whenever the sampled series have promotions
from the holdout on.

Costs per policy: holding = unit cost x holding rate / 365 per unit-day of ending stock; lost margin =
(net price - unit cost) per lost unit, the net price being the catalogue price x (1 - the day's discount),
which is what ``sales_daily.price`` holds (never below 0); order cost = the fixed cost per purchase order
(one per series and plan day with a positive quantity). Total = holding + lost margin + order cost; purchase
costs are not counted (every policy buys what it sells; stock left at the end is reported beside). Goals: our
total at least ``goal_vs_rule`` below the RIMAS rule's and ``goal_vs_naive`` below the seasonal naive's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from ml.demand.panel import Panel, build_panel
from ml.demand.train import MAX_HORIZON, QuantileModels, fit_quantiles, min_history_days
from ml.errors import InputError
from ml.inventory import z_value
from ml.metrics import wape
from ml.planning import ItemPlanInput, PlanningCosts, check_costs, plan_item
from ml.report import format_table
from ml.startup import startup_demand_config

log = logging.getLogger(__name__)

Forecaster = Callable[[Panel, int], tuple[np.ndarray, np.ndarray]]
"""``(history, steps) -> (p50, p90)``, each (series of ``history`` x ``steps``) for the days after it."""

OrderRule = Callable[[int, np.ndarray, np.ndarray], np.ndarray]
"""``(held-out day, on hand, on order) -> order quantities`` (one per simulated series)."""

POLICIES = {
    "ours": "ours: plan_item on model P50/P90",
    "ours_unplanned": "ours, promotion plan not told",
    "seasonal_naive": "order-up-to, seasonal naive",
    "rimas_rule": "RIMAS rule: 50 when low",
}
FORECASTS = {
    "ours": "model P50",
    "seasonal_naive": "seasonal naive",
    "ours_unplanned": "model P50 without the promotion plan",
}
RULE_ORDER_UNITS = 50
STAT_WINDOW_DAYS = 28


@dataclass(frozen=True)
class PlanEvalConfig:
    """What to replay and how (defaults: the seed's 14-day horizon, its 3-day lead time, 100 series)."""

    items: int = 100
    holdout_days: int = 56
    review_days: int = 14
    lead_time_days: int = 3
    seed: int = 7
    costs: PlanningCosts = field(default_factory=PlanningCosts)
    min_history_days: int = 56
    error_window_days: int = 182
    goal_vs_rule: float = 0.25
    goal_vs_naive: float = 0.10
    retrain_each_review: bool = False


@dataclass(frozen=True)
class SimTrace:
    """Day-by-day outcome of one policy: (series x held-out day) arrays."""

    orders: np.ndarray
    arrivals: np.ndarray
    sold: np.ndarray
    lost: np.ndarray
    end_stock: np.ndarray
    undelivered: np.ndarray
    """(series,) units ordered that arrive after the last held-out day."""


@dataclass(frozen=True)
class PolicyResult:
    """One policy's service and costs over the held-out days."""

    name: str
    label: str
    demand: float
    sold: float
    lost: float
    fill_rate: float
    stockout_days: int
    item_days: int
    holding_cost: float
    lost_margin: float
    order_cost: float
    orders: int
    units_ordered: float
    end_stock: float

    @property
    def total_cost(self) -> float:
        return self.holding_cost + self.lost_margin + self.order_cost


@dataclass(frozen=True)
class Goal:
    baseline: str
    target: float
    """Required reduction of our total cost, as a share of the baseline's (0.25 = 25 % below)."""
    reduction: float

    @property
    def met(self) -> bool:
        return self.reduction >= self.target


@dataclass(frozen=True)
class PlanEvalReport:
    series: int
    holdout_start: date
    holdout_end: date
    plan_dates: list[date]
    config: PlanEvalConfig
    policies: list[PolicyResult]
    goals: list[Goal]
    forecast_wape: dict[str, float]
    """WAPE (%) of the P50 lead-time + review sums against the actual sums, per forecast, over all plans."""
    seconds: float

    @property
    def passed(self) -> bool:
        return all(g.met for g in self.goals)

    def policy(self, name: str) -> PolicyResult:
        return next(p for p in self.policies if p.name == name)


# -- the simulator -------------------------------------------------------------------------------------------


def simulate(
    demand: np.ndarray, start_stock: np.ndarray, lead: np.ndarray, plan_days: Sequence[int], rule: OrderRule
) -> SimTrace:
    """Serve ``demand`` (series x days) from stock, ordering with ``rule`` on ``plan_days`` (0-based days).

    Each day: arrivals due that day, then (on a plan day) the order, which arrives ``lead`` days later (at
    once for lead 0), then ``sold = min(demand, stock)``; the unserved demand is lost.
    """
    n_series, n_days = demand.shape
    lead = np.asarray(lead, dtype=np.int64)
    due = np.zeros((n_series, n_days + int(lead.max(initial=0)) + 1))
    stock = np.asarray(start_stock, dtype=float).copy()
    out = {k: np.zeros((n_series, n_days)) for k in ("orders", "arrivals", "sold", "lost", "end_stock")}
    rows = np.arange(n_series)
    plan_set = set(plan_days)
    for day in range(n_days):
        if day in plan_set:
            qty = _checked_orders(rule(day, stock.copy(), due[:, day:].sum(axis=1)), n_series)
            out["orders"][:, day] = qty
            np.add.at(due, (rows, day + lead), qty)
        out["arrivals"][:, day] = due[:, day]
        stock += due[:, day]
        sold = np.minimum(demand[:, day], stock)
        out["sold"][:, day] = sold
        out["lost"][:, day] = demand[:, day] - sold
        stock -= sold
        out["end_stock"][:, day] = stock
    return SimTrace(undelivered=due[:, n_days:].sum(axis=1), **out)


def _checked_orders(qty: np.ndarray, n_series: int) -> np.ndarray:
    q = np.asarray(qty, dtype=float)
    if q.shape != (n_series,) or not np.all(np.isfinite(q)) or np.any(q < 0):
        raise ValueError("an order rule must return one finite quantity >= 0 per series")
    return q


def account(
    name: str, trace: SimTrace, demand: np.ndarray, unit_cost: np.ndarray, margin: np.ndarray, costs: PlanningCosts
) -> PolicyResult:
    """Service and costs of a simulated policy (``margin``: per lost unit, series x days)."""
    holding = float((trace.end_stock * (unit_cost * costs.holding_rate_per_year / 365.0)[:, None]).sum())
    total_demand = float(demand.sum())
    placed = int((trace.orders > 0).sum())
    return PolicyResult(
        name=name,
        label=POLICIES.get(name, name),
        demand=total_demand,
        sold=float(trace.sold.sum()),
        lost=float(trace.lost.sum()),
        fill_rate=float(trace.sold.sum() / total_demand) if total_demand > 0 else 1.0,
        stockout_days=int((trace.lost > 1e-9).sum()),
        item_days=int(demand.size),
        holding_cost=holding,
        lost_margin=float((trace.lost * margin).sum()),
        order_cost=placed * costs.order_cost,
        orders=placed,
        units_ordered=float(trace.orders.sum()),
        end_stock=float(trace.end_stock[:, -1].sum()) if trace.end_stock.size else 0.0,
    )


# -- forecasts ------------------------------------------------------------------------------------------------


def fit_demand(history: Panel, horizon: int, seed: int) -> QuantileModels:
    """The server's training settings at ``horizon``: early stopping on the last days, then a refit on all."""
    cfg = startup_demand_config(horizon)
    cfg.seed = seed
    _, rounds = fit_quantiles(history, cfg)
    models, _ = fit_quantiles(history, cfg, rounds=rounds)
    return models


def model_forecaster(models: QuantileModels) -> Forecaster:
    """Forecasts of an already fitted model from whatever history it is given."""

    def forecast(history: Panel, steps: int) -> tuple[np.ndarray, np.ndarray]:
        fc = models.forecast(history, steps)
        return fc["p50"], fc["p90"]

    return forecast


def retraining_forecaster(horizon: int, seed: int) -> Forecaster:
    """Fits a model on the history it is given, then forecasts from it (one fit per plan day)."""

    def forecast(history: Panel, steps: int) -> tuple[np.ndarray, np.ndarray]:
        return model_forecaster(fit_demand(history, horizon, seed))(history, steps)

    return forecast


def naive_protection(values: np.ndarray, days: int, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Seasonal-naive sum over the next ``days`` and the RMSE of that sum at past origins, per series.

    ``values`` is (series x history days), NaN where unknown; the past origins are the ``window`` last ones
    whose ``days``-long window ends inside the history.
    """
    n_days = values.shape[1]
    k = np.arange(1, days + 1)
    back = k - 7 * -(-k // 7)  # offsets of the seasonal-naive source day, -6..0
    filled = np.nan_to_num(values, nan=0.0)
    forecast = filled[:, n_days - 1 + back].sum(axis=1)
    origins = np.arange(max(6, n_days - 1 - days - window + 1), n_days - days)
    if origins.size == 0:
        return forecast, np.full(values.shape[0], np.nan)
    past_fc = np.zeros((values.shape[0], origins.size))
    for b in back:
        past_fc = past_fc + values[:, origins + b]  # NaN where a source day was not observed
    csum = np.hstack([np.zeros((values.shape[0], 1)), np.cumsum(filled, axis=1)])
    err = csum[:, origins + days + 1] - csum[:, origins + 1] - past_fc
    return forecast, _nan_rms(err)


def _nan_mean(values: np.ndarray) -> np.ndarray:
    """Row means of the known values (0 for a row with none)."""
    count = (~np.isnan(values)).sum(axis=1)
    return np.where(count > 0, np.nansum(values, axis=1) / np.maximum(count, 1), 0.0)


def _nan_rms(values: np.ndarray) -> np.ndarray:
    """Row root mean squares of the known values (NaN for a row with none)."""
    count = (~np.isnan(values)).sum(axis=1)
    return np.where(count > 0, np.sqrt(np.nansum(values * values, axis=1) / np.maximum(count, 1)), np.nan)


# -- the evaluation -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Setup:
    panel: Panel
    rows: np.ndarray
    start: int
    demand: np.ndarray
    lead: np.ndarray
    plan_days: list[int]
    unit_cost: np.ndarray
    unit_price: np.ndarray
    margin: np.ndarray
    start_stock: np.ndarray


def check_config(cfg: PlanEvalConfig) -> PlanEvalConfig:
    for name in ("items", "holdout_days", "review_days"):
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"must be a whole number >= 1, got {value!r}", field=name)
    lt = cfg.lead_time_days
    if isinstance(lt, bool) or not isinstance(lt, int) or lt < 0:
        raise InputError(f"must be a whole number >= 0, got {lt!r}", field="lead_time_days")
    if lt + cfg.review_days > MAX_HORIZON:
        raise InputError(f"lead time + review must be at most {MAX_HORIZON} days", field="review_days")
    check_costs(cfg.costs)
    return cfg


def _products(products: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in ("sku", "unit_cost", "unit_price") if c not in products.columns]
    if missing:
        raise InputError(
            f"products lack {', '.join(missing)}", field=missing[0], allowed=["sku", "unit_cost", "unit_price"]
        )
    out = pd.DataFrame({c: pd.to_numeric(products[c], errors="coerce") for c in ("sku", "unit_cost", "unit_price")})
    bad = out.isna().any(axis=1) | (out["unit_cost"] <= 0) | (out["unit_price"] < 0)
    if bad.any():
        pos = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError("needs a number sku, unit_cost > 0 and unit_price >= 0", field="products", row=pos + 1)
    return out.drop_duplicates("sku").set_index("sku")


def _sample(panel: Panel, items: int, seed: int) -> np.ndarray:
    n = len(panel.keys)
    if items >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=items, replace=False))


def _setup(sales: pd.DataFrame, products: pd.DataFrame, cfg: PlanEvalConfig) -> _Setup:
    panel = build_panel(sales)
    catalogue = _products(products)
    start = panel.n_days - cfg.holdout_days
    horizon = cfg.lead_time_days + cfg.review_days
    if start < min_history_days(horizon):
        raise InputError(
            f"{panel.n_days} days of sales; holding out {cfg.holdout_days} needs at least "
            f"{min_history_days(horizon)} before them",
            field="holdout_days",
        )
    rows = _sample(panel, cfg.items, cfg.seed)
    skus = panel.keys["item"].to_numpy()[rows]
    unknown = sorted(set(skus.tolist()) - set(catalogue.index.tolist()))
    if unknown:
        raise InputError(f"sku {unknown[0]} has sales but no product row", field="sku")
    unit_cost = catalogue.loc[skus, "unit_cost"].to_numpy(float)
    unit_price = catalogue.loc[skus, "unit_price"].to_numpy(float)
    offsets = np.arange(start, panel.n_days)
    net_price = unit_price[:, None] * (1.0 - panel.discount_at(offsets)[rows])
    recent = _nan_mean(panel.values[rows, start - STAT_WINDOW_DAYS : start])
    lead = np.full(len(rows), cfg.lead_time_days, dtype=np.int64)
    return _Setup(
        panel=panel,
        rows=rows,
        start=start,
        demand=np.nan_to_num(panel.values[rows, start:], nan=0.0),
        lead=lead,
        plan_days=list(range(0, cfg.holdout_days, cfg.review_days)),
        unit_cost=unit_cost,
        unit_price=unit_price,
        margin=np.maximum(net_price - unit_cost[:, None], 0.0),
        start_stock=np.round(recent * (lead + cfg.review_days)),
    )


def _history_days(history: Panel, rows: np.ndarray) -> np.ndarray:
    return (~np.isnan(history.values[rows])).sum(axis=1)


def without_promotion_plan(history: Panel) -> Panel:
    """The history with its discount calendar cut at its last day: no promotion planned after it."""
    return Panel(
        keys=history.keys, start=history.start, values=history.values, discount=history.discount[:, : history.n_days]
    )


def _ours(
    s: _Setup, cfg: PlanEvalConfig, forecaster: Forecaster, record: list[float], *, planned: bool = True
) -> OrderRule:
    steps = int(s.lead.max()) + cfg.review_days

    def rule(day: int, on_hand: np.ndarray, on_order: np.ndarray) -> np.ndarray:
        history = s.panel.head(s.start + day)
        if not planned:
            history = without_promotion_plan(history)
        p50, p90 = forecaster(history, steps)
        p50, p90 = np.asarray(p50)[s.rows], np.asarray(p90)[s.rows]
        known = _history_days(history, s.rows)
        qty = np.zeros(len(s.rows))
        for i, row in enumerate(s.rows):
            n = int(s.lead[i]) + cfg.review_days
            plan = plan_item(
                ItemPlanInput(
                    sku=int(s.panel.keys["item"].iloc[row]),
                    on_hand=float(on_hand[i]),
                    on_order=float(on_order[i]),
                    p50=p50[i, :n].tolist(),
                    p90=p90[i, :n].tolist(),
                    lead_time_days=int(s.lead[i]),
                    review_days=cfg.review_days,
                    unit_cost=float(s.unit_cost[i]),
                    unit_price=float(s.unit_price[i]),
                    history_days=int(known[i]),
                ),
                cfg.costs,
                min_history_days=cfg.min_history_days,
            )
            qty[i] = plan.order_qty
            record.append(float(p50[i, :n].sum()))
        return qty

    return rule


def _naive(s: _Setup, cfg: PlanEvalConfig, record: list[float]) -> OrderRule:
    z = z_value(cfg.costs.service_level)

    def rule(day: int, on_hand: np.ndarray, on_order: np.ndarray) -> np.ndarray:
        values = s.panel.head(s.start + day).values[s.rows]
        point, target = np.zeros(len(s.rows)), np.zeros(len(s.rows))
        for lead in np.unique(s.lead):
            pick = s.lead == lead
            fc, rmse = naive_protection(values[pick], int(lead) + cfg.review_days, cfg.error_window_days)
            point[pick], target[pick] = fc, fc + z * np.nan_to_num(rmse)
        record.extend(point.tolist())
        return np.ceil(np.maximum(target - on_hand - on_order, 0.0) - 1e-9)

    return rule


def _rimas_rule(s: _Setup) -> OrderRule:
    def rule(day: int, on_hand: np.ndarray, on_order: np.ndarray) -> np.ndarray:
        recent = s.panel.head(s.start + day).values[s.rows, -STAT_WINDOW_DAYS:]
        low = _nan_mean(recent) * np.maximum(s.lead, 1)
        return np.where(on_hand + on_order < low, float(RULE_ORDER_UNITS), 0.0)

    return rule


def _actual_sums(s: _Setup, cfg: PlanEvalConfig) -> list[float]:
    """Actual sales over each plan's lead time + review, where the window ends inside the data."""
    out: list[float] = []
    for day in s.plan_days:
        for i, row in enumerate(s.rows):
            end = s.start + day + int(s.lead[i]) + cfg.review_days
            out.append(float(np.nansum(s.panel.values[row, s.start + day : end])) if end <= s.panel.n_days else np.nan)
    return out


def evaluate_planning(
    sales: pd.DataFrame,
    products: pd.DataFrame,
    cfg: PlanEvalConfig | None = None,
    *,
    forecaster: Forecaster | None = None,
) -> PlanEvalReport:
    """Replay the held-out days through the three policies (see the module docstring)."""
    began = time.perf_counter()
    cfg = check_config(cfg or PlanEvalConfig())
    s = _setup(sales, products, cfg)
    horizon = int(s.lead.max()) + cfg.review_days
    if forecaster is None:
        if cfg.retrain_each_review:
            forecaster = retraining_forecaster(horizon, cfg.seed)
        else:
            forecaster = model_forecaster(fit_demand(s.panel.head(s.start), horizon, cfg.seed))
    record: dict[str, list[float]] = {"ours": [], "seasonal_naive": [], "ours_unplanned": []}
    rules = {
        "ours": _ours(s, cfg, forecaster, record["ours"]),
        "seasonal_naive": _naive(s, cfg, record["seasonal_naive"]),
        "rimas_rule": _rimas_rule(s),
    }
    if s.panel.discount_at(np.arange(s.start, s.panel.n_days + horizon))[s.rows].any():
        rules["ours_unplanned"] = _ours(s, cfg, forecaster, record["ours_unplanned"], planned=False)
    results = []
    for name, rule in rules.items():
        trace = simulate(s.demand, s.start_stock, s.lead, s.plan_days, rule)
        results.append(account(name, trace, s.demand, s.unit_cost, s.margin, cfg.costs))
        log.info("planning policy simulated", extra={"policy": name, "total_cost": round(results[-1].total_cost, 2)})
    ours = results[0]
    goals = [
        Goal(b.name, target, 1.0 - ours.total_cost / b.total_cost if b.total_cost > 0 else 0.0)
        for b, target in ((results[2], cfg.goal_vs_rule), (results[1], cfg.goal_vs_naive))
    ]
    record = {k: v for k, v in record.items() if v}
    actual = np.array(_actual_sums(s, cfg))
    ok = ~np.isnan(actual)
    dates = s.panel.dates(np.array([s.start + d for d in s.plan_days]))
    return PlanEvalReport(
        series=len(s.rows),
        holdout_start=s.panel.dates(np.array([s.start]))[0].date(),
        holdout_end=s.panel.last_date.date(),
        plan_dates=[d.date() for d in dates],
        config=cfg,
        policies=results,
        goals=goals,
        forecast_wape={k: wape(actual[ok], np.array(v)[ok]) for k, v in record.items()},
        seconds=time.perf_counter() - began,
    )


# -- the report -----------------------------------------------------------------------------------------------


def format_report(report: PlanEvalReport) -> str:
    """A readable table of the policies' service and costs, and whether the goals are met."""
    cfg = report.config
    ours = report.policy("ours")
    lines = [
        f"planning replay: {report.series} series (sample seed {cfg.seed}), held-out days {report.holdout_start} "
        f"to {report.holdout_end} ({cfg.holdout_days} days), a plan every {cfg.review_days} days "
        f"({len(report.plan_dates)} plans), lead time {cfg.lead_time_days} days",
        f"service level {cfg.costs.service_level:.0%}, holding {cfg.costs.holding_rate_per_year:.0%} of unit cost "
        f"a year, {cfg.costs.order_cost:.2f} per purchase order; demand = the actual held-out sales",
        "",
    ]
    header = [
        "policy",
        "fill rate",
        "stock-out days",
        "holding",
        "lost margin",
        "order cost",
        "total cost",
        "POs",
        "units ordered",
        "end stock",
        "ours vs it",
    ]
    rows = []
    for p in report.policies:
        vs = "-" if p is ours else f"{-100 * (1 - ours.total_cost / p.total_cost):+.1f} %" if p.total_cost else "-"
        rows.append(
            [
                p.label,
                f"{100 * p.fill_rate:.2f} %",
                f"{p.stockout_days} / {p.item_days}",
                f"{p.holding_cost:,.0f}",
                f"{p.lost_margin:,.0f}",
                f"{p.order_cost:,.0f}",
                f"{p.total_cost:,.0f}",
                p.orders,
                f"{p.units_ordered:,.0f}",
                f"{p.end_stock:,.0f}",
                vs,
            ]
        )
    lines.append(format_table(header, rows))
    lines.append("")
    wapes = ", ".join(f"{FORECASTS[k]} {v:.1f} %" for k, v in report.forecast_wape.items())
    lines.append(f"forecast WAPE of the P50 lead-time + review sums: {wapes}")
    for g in report.goals:
        lines.append(
            f"goal: total cost at least {g.target:.0%} below {POLICIES[g.baseline]}: "
            f"{100 * g.reduction:.1f} % below, {'met' if g.met else 'MISSED'}"
        )
    unplanned = next((p for p in report.policies if p.name == "ours_unplanned"), None)
    if unplanned is not None:
        naive = report.policy("seasonal_naive").total_cost
        change = 100 * (unplanned.total_cost / naive - 1)
        lines.append(
            f"not a goal: with the forecast not told the planned promotions ours costs {unplanned.total_cost:,.0f}, "
            f"{abs(change):.1f} % {'above' if change > 0 else 'below'} the seasonal naive"
        )
    lines.append(f"{'all goals met' if report.passed else 'goals missed'} ({report.seconds:.1f} s)")
    return "\n".join(lines)
